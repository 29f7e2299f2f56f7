import _brainmr_path  # noqa: F401

from brainmr.evaluate.judges.outliers import flag_reference_files
from brainmr.logs import log_to

log_to(snakemake.log[0])
flag_reference_files(
    real=snakemake.input.real,
    ceilings=snakemake.input.ceilings,
    out_tsv=snakemake.output[0],
    mad_k=snakemake.params.mad_k,
)
