import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.studies.instructed import summarise_instructions
from brainmr.logs import log_to

log_to(snakemake.log[0])
summarise_instructions(
    images=snakemake.input.images,
    slices=read_slices(snakemake.input.slices),
    morphometry=snakemake.input.morphometry,
    judges=snakemake.input.judges,
    n_bootstrap=snakemake.params.n_bootstrap,
    seed=snakemake.params.seed,
    out_table=snakemake.output.table,
    out_images=snakemake.output.images,
    out_reals=snakemake.output.reals,
)
