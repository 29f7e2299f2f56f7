import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.cohort.sets import generated_table
from brainmr.evaluate.judges.scoring import score_images
from brainmr.logs import log_to

log_to(snakemake.log[0])
score_images(  # a folder of images: a generated set or a ceiling set
    images=generated_table(snakemake.input.images),
    kde_model=snakemake.input.kde,
    train=read_slices(snakemake.input.slices, "train"),
    out_tsv=snakemake.output[0],
)
