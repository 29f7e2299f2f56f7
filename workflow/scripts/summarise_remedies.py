import _brainmr_path  # noqa: F401

from brainmr.evaluate.studies.remedies import summarise_remedies
from brainmr.logs import log_to

log_to(snakemake.log[0])
summarise_remedies(
    by_seed=snakemake.input.by_seed,
    baseline=snakemake.params.baseline,
    remedies=snakemake.params.remedies,
    out=snakemake.output[0],
)
