import _brainmr_path  # noqa: F401

from snakemake.script import snakemake

from brainmr.cohort import slice_table
from brainmr.evaluate import EvaluateConfig, score_images
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
score_images(
    images=slices[slices.split == "test"].assign(condition="real"),
    kde_model=snakemake.input.kde,
    classifier=snakemake.input.classifier,
    train=slices[slices.split == "train"],
    out_tsv=snakemake.output[0],
    cfg=EvaluateConfig(**snakemake.params.evaluate),
)
