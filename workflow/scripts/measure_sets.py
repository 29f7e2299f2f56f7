import _brainmr_path  # noqa: F401

from brainmr.cohort import slice_table
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.sets import set_metrics_file
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
set_metrics_file(
    scores=snakemake.input.scores,
    classifier=snakemake.input.classifier,
    classifier_metrics=snakemake.input.classifier_metrics,
    train=slices[slices.split == "train"],
    out_tsv=snakemake.output[0],
    cfg=JudgeConfig(**snakemake.params.judge),
)
