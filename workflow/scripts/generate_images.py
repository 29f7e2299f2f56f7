import _brainmr_path  # noqa: F401

from brainmr.diffusion.config import GenerateConfig
from brainmr.diffusion.generate import generate_image_sets
from brainmr.instructions import read_requests
from brainmr.logs import log_to

log_to(snakemake.log[0])
groups = list(snakemake.params.prompts)
generate_image_sets(
    model_dirs={group: snakemake.input[group] for group in groups},
    prompts=snakemake.params.prompts,
    condition=snakemake.wildcards.condition,
    out_dirs={group: snakemake.output[group] for group in groups},
    cfgs={group: GenerateConfig(**snakemake.params.generate[group]) for group in groups},
    threads=snakemake.threads,
    requests=read_requests(snakemake.input.requests) if snakemake.input.get("requests") else {},
)
