import _brainmr_path  # noqa: F401

from brainmr.cohort import slice_table
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.kde import fit_kde
from brainmr.io import read_tsv
from brainmr.logs import log_to

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
fit_kde(
    train=slices[slices.split == "train"],
    out_model=snakemake.output.model,
    out_json=snakemake.output.summary,
    cfg=KdeConfig(**snakemake.params.kde),
)
