import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.judges.scoring import real_morphometry_file
from brainmr.logs import log_to

log_to(snakemake.log[0])
real_morphometry_file(
    slices=read_slices(snakemake.input.slices),
    out_tsv=snakemake.output[0],
)
