import _brainmr_path  # noqa: F401

from brainmr.logs import log_to
from brainmr.report.remedies import write_remedies

log_to(snakemake.log[0])
write_remedies(
    table=snakemake.input[0],
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_forest=snakemake.output.forest,
)
