import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.diffusion.bottleneck import write_ceiling_sets
from brainmr.evaluate.ceiling import ceiling_condition
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_ceiling_sets(
    base_model=snakemake.params.base_model,
    test=read_slices(snakemake.input.slices, "test"),
    resolution=snakemake.params.resolution,
    condition=ceiling_condition(snakemake.wildcards.bottleneck),
    out_dirs={"AD": snakemake.output.AD, "CN": snakemake.output.CN},
    mixed_precision=snakemake.params.mixed_precision,
    threads=snakemake.threads,
)
