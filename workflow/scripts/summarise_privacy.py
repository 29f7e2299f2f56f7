import _brainmr_path  # noqa: F401

from brainmr.evaluate.studies.privacy_summary import summarise_privacy
from brainmr.logs import log_to

log_to(snakemake.log[0])
summarise_privacy(
    membership=snakemake.input.membership,
    steps=snakemake.input.steps,
    scores=snakemake.input.scores,
    seeds=snakemake.params.seeds,
    references=snakemake.input.references,
    slices=snakemake.input.slices,
    quantile=snakemake.params.quantile,
    n_bootstrap=snakemake.params.n_bootstrap,
    seed=snakemake.params.seed,
    top=snakemake.params.top,
    out_attacks=snakemake.output.attacks,
    out_summary=snakemake.output.summary,
    out_subjects=snakemake.output.subjects,
    out_steps=snakemake.output.steps,
    out_threshold=snakemake.output.threshold,
)
