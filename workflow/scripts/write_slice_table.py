import _brainmr_path  # noqa: F401

from brainmr.cohort import write_slice_table
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_slice_table(
    snakemake.output[0], scans=read_tsv(snakemake.input.scans), slice_paths=snakemake.input.slices
)
