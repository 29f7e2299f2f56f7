import _brainmr_path  # noqa: F401

from brainmr.conditions import conditions_from
from brainmr.logs import log_to
from brainmr.report import make_figures

log_to(snakemake.log[0])
make_figures(
    scores=snakemake.input.scores[0],  # the headline seed's (the rule's one input)
    set_metrics=snakemake.input.set_metrics[0],
    summary=snakemake.input.summary,
    conditions=conditions_from(snakemake.params.conditions),
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    out_figure1=snakemake.output.figure1,
    out_forest=snakemake.output.forest,
    out_histograms=snakemake.output.histograms,
    out_memorization=snakemake.output.memorization,
)
