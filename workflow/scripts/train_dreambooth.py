import _brainmr_path  # noqa: F401

from brainmr.cohort import instance_set, read_slices
from brainmr.config import from_section
from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig, GenerateConfig
from brainmr.diffusion.dreambooth import train_dreambooth
from brainmr.instructions import InstructionConfig
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = read_slices(snakemake.input.slices)
# template prompts are written per slice from its subject's age and sex
params = snakemake.params.instructions
instructions = InstructionConfig(**params) if params else None
# Checkpointing and validation settings come from config, not params: changing them must not
# rerun training.
train_dreambooth(
    base_model=snakemake.params.base_model,
    instances=instance_set(slices, snakemake.params.prompts, instructions),
    pipeline_dir=snakemake.output.model,
    work_dir=snakemake.params.work_dir,
    cfg=DreamBoothConfig(**snakemake.params.dreambooth),
    run=from_section(DreamBoothRunConfig, snakemake.config["dreambooth"]),
    gen_cfg=from_section(GenerateConfig, snakemake.config["generate"], seed=0),
    threads=snakemake.threads,
)
