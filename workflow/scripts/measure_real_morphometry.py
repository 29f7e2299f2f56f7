import _brainmr_path  # noqa: F401

from brainmr.cohort import slice_table
from brainmr.evaluate.scoring import real_morphometry_file
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
real_morphometry_file(
    slices=slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices),
    out_tsv=snakemake.output[0],
)
