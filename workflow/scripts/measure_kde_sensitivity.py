import _brainmr_path  # noqa: F401

from brainmr.cohort import slice_table
from brainmr.cohort.sets import generated_sets
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.kde_sensitivity import kde_sensitivity_file
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
kde_sensitivity_file(
    train=slices[slices.split == "train"],
    test=slices[slices.split == "test"],
    generated=generated_sets(snakemake.input.images, snakemake.params.seeds),
    out_csv=snakemake.output[0],
    cfg=KdeConfig(**snakemake.params.kde),
    mad_k=snakemake.params.mad_k,
)
