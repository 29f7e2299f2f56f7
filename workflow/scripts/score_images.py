import _brainmr_path  # noqa: F401

from brainmr.cohort import slice_table
from brainmr.cohort.sets import generated_table
from brainmr.evaluate.scoring import score_images
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
score_images(  # a folder of images: a generated set or a ceiling set
    images=generated_table(snakemake.input.images),
    kde_model=snakemake.input.kde,
    classifier=snakemake.input.classifier,
    train=slices[slices.split == "train"],
    out_tsv=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
)
