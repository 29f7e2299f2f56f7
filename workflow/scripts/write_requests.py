import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.config import from_section
from brainmr.instructions import InstructionConfig, write_requests
from brainmr.logs import log_to

log_to(snakemake.log[0])
write_requests(
    snakemake.output[0],
    prompts=snakemake.params.prompts,
    heldout=read_slices(snakemake.input.slices, "test"),
    n=snakemake.params.n_images,
    cfg=from_section(InstructionConfig, snakemake.params.instructions),
    seed=int(snakemake.wildcards.seed),
)
