import _brainmr_path  # noqa: F401

from brainmr.logs import log_to
from brainmr.report.privacy import write_privacy

log_to(snakemake.log[0])
write_privacy(
    summary=snakemake.input.summary,
    attacks=snakemake.input.attacks,
    subjects=snakemake.input.subjects,
    steps=snakemake.input.steps,
    threshold=snakemake.input.threshold,
    conditions=snakemake.params.conditions,
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_attack=snakemake.output.attack,
    out_steps=snakemake.output.steps,
)
