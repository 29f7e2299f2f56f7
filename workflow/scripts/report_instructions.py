import _brainmr_path  # noqa: F401

from brainmr.conditions import conditions_from
from brainmr.logs import log_to
from brainmr.report.instructions import write_instructions_files

log_to(snakemake.log[0])
write_instructions_files(
    table=snakemake.input.table,
    images=snakemake.input.images,
    reals=snakemake.input.reals,
    conditions=conditions_from(snakemake.params.conditions),
    seeds=snakemake.params.seeds,
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_figures=snakemake.output.figures,
)
