import _brainmr_path  # noqa: F401

from snakemake.script import snakemake

from brainmr.diffusion import GenerateConfig, generate_images
from brainmr.logs import log_to

log_to(snakemake.log[0])
generate_images(
    model_dir=snakemake.input.model,
    prompt=snakemake.params.prompt,
    condition=snakemake.wildcards.condition,
    group=snakemake.wildcards.group,
    out_dir=snakemake.output.images,
    cfg=GenerateConfig(**snakemake.params.generate),
    threads=snakemake.threads,
)
