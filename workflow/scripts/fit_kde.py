import _brainmr_path  # noqa: F401

from brainmr.cohort import read_slices
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.judges.kde import fit_kde
from brainmr.logs import log_to

log_to(snakemake.log[0])
fit_kde(
    train=read_slices(snakemake.input.slices, "train"),
    out_model=snakemake.output.model,
    out_json=snakemake.output.summary,
    cfg=KdeConfig(**snakemake.params.kde),
)
