import _brainmr_path  # noqa: F401

from brainmr.diffusion import GenerateConfig, generate_image_sets
from brainmr.logs import log_to

log_to(snakemake.log[0])
generate_image_sets(
    model_dir=snakemake.input.model,
    prompts=snakemake.params.prompts,
    condition=snakemake.wildcards.condition,
    out_dirs={group: snakemake.output[group] for group in snakemake.params.prompts},
    cfg=GenerateConfig(**snakemake.params.generate),
    threads=snakemake.threads,
)
