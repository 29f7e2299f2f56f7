import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.cohort.sets import generated_sets
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.studies.kde_sensitivity import kde_sensitivity_file
from brainmr.logs import log_to

log_to(snakemake.log[0])
kde_sensitivity_file(
    train=read_slices(snakemake.input.slices, "train"),
    test=read_slices(snakemake.input.slices, "test"),
    generated=generated_sets(snakemake.input.images, snakemake.params.seeds),
    out_csv=snakemake.output[0],
    cfg=KdeConfig(**snakemake.params.kde),
    mad_k=snakemake.params.mad_k,
)
