import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.judges.sets import set_metrics_file
from brainmr.logs import log_to

log_to(snakemake.log[0])
set_metrics_file(
    scores=snakemake.input.scores,
    features=snakemake.input.features,
    cnn=snakemake.input.cnn,
    classifier=snakemake.input.classifier,
    classifier_metrics=snakemake.input.classifier_metrics,
    train=read_slices(snakemake.input.slices, "train"),
    out_tsv=snakemake.output[0],
    cfg=JudgeConfig(**snakemake.params.judge),
)
