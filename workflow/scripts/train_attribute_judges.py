import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.studies.attributes import train_attribute_judges
from brainmr.logs import log_to

log_to(snakemake.log[0])
train_attribute_judges(
    scans=read_slices(snakemake.input.slices),
    out_model=snakemake.output.model,
    out_metrics=snakemake.output.metrics,
    cfg=ClassifierConfig(**snakemake.params.classifier),
    threads=snakemake.threads,
)
