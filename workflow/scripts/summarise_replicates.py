import _brainmr_path  # noqa: F401

from brainmr.evaluate.table1.replicates import summarise_replicates
from brainmr.logs import log_to

log_to(snakemake.log[0])
summarise_replicates(
    scores=snakemake.input.scores,
    references=snakemake.input.references,
    set_metrics=snakemake.input.set_metrics,
    cnn_metrics=snakemake.input.cnn,
    seeds=snakemake.params.seeds,
    conditions=snakemake.params.conditions,
    n_bootstrap=snakemake.params.n_bootstrap,
    out_by_seed=snakemake.output.by_seed,
    out_summary=snakemake.output.summary,
    out_comparisons=snakemake.output.comparisons,
    out_verdict=snakemake.output.verdict,
    reals=snakemake.input.reals,
    out_morphometry=snakemake.output.morphometry,
    out_findings=snakemake.output.findings,
)
