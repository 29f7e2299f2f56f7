import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.judges.classifier import train_classifier
from brainmr.logs import log_to
from brainmr.report.classifier import classifier_figures

log_to(snakemake.log[0])
held_out = train_classifier(
    scans=read_slices(snakemake.input.slices),
    out_model=snakemake.output.model,
    out_metrics=snakemake.output.metrics,
    out_predictions=snakemake.output.predictions,
    cfg=ClassifierConfig(**snakemake.params.classifier),
    threads=snakemake.threads,
)
classifier_figures(
    held_out, out_roc=snakemake.output.roc, out_reliability=snakemake.output.reliability
)
