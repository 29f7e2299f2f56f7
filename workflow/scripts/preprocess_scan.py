import _brainmr_path  # noqa: F401

from brainmr.logs import log_to
from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.scan import preprocess_scan

log_to(snakemake.log[0])
preprocess_scan(
    snakemake.input.scan,
    subject=snakemake.wildcards.subject,
    cfg=PreprocessConfig(**snakemake.params.preprocess),
    slice_npy=snakemake.output.slice,
    slice_png=snakemake.output.png,
    qc_png=snakemake.output.qc,
    transform=snakemake.output.transform,
    threads=snakemake.threads,
)
