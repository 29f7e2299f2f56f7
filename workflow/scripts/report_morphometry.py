import _brainmr_path  # noqa: F401

from brainmr.conditions import conditions_from
from brainmr.logs import log_to
from brainmr.report.morphometry import write_morphometry

log_to(snakemake.log[0])
write_morphometry(
    morphometry=snakemake.input.morphometry,
    references=snakemake.input.references,
    scores=snakemake.input.scores,
    conditions=conditions_from(snakemake.params.conditions),
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_figure=snakemake.output.figure,
)
