import _brainmr_path  # noqa: F401

from brainmr.diffusion.config import MembershipConfig
from brainmr.evaluate.studies.privacy_measure import measure_model_privacy
from brainmr.logs import log_to

log_to(snakemake.log[0])
measure_model_privacy(
    # the base as given where it is not a local folder (then it is no input)
    model_dir=snakemake.input.model or snakemake.params.base_model,
    slices=snakemake.input.slices,
    prompts=snakemake.params.prompts,
    instructions=snakemake.params.instructions,
    validation_dir=snakemake.input.validation or None,
    labels=snakemake.params.labels,
    cfg=MembershipConfig(**snakemake.params.membership),
    resolution=snakemake.params.resolution,
    out_membership=snakemake.output.membership,
    out_steps=snakemake.output.steps,
    mixed_precision=snakemake.params.mixed_precision,
    threads=snakemake.threads,
)
