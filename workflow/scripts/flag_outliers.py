import _brainmr_path  # noqa: F401

from brainmr.evaluate.judges.outliers import flag_outlier_files
from brainmr.logs import log_to

log_to(snakemake.log[0])
flag_outlier_files(
    generated=snakemake.input.generated,
    references=snakemake.input.references,
    cnn=snakemake.input.cnn,
    out_tsv=snakemake.output[0],
)
