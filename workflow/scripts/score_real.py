import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.evaluate.judges.scoring import score_images
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = read_slices(snakemake.input.slices)
score_images(  # the held-out real slices, scored as the generated sets are
    images=slices[slices.split == "test"].assign(condition=REAL_CONDITION),
    kde_model=snakemake.input.kde,
    train=slices[slices.split == "train"],
    out_tsv=snakemake.output[0],
)
