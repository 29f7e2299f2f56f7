import _brainmr_path  # noqa: F401

from snakemake.script import snakemake

from brainmr.cohort import slice_table
from brainmr.io import read_tsv
from brainmr.logs import log_to
from brainmr.report import make_figures

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
make_figures(
    generated=snakemake.input.generated,
    real=snakemake.input.real,
    train=slices[slices.split == "train"],
    test=slices[slices.split == "test"],
    outliers=snakemake.input.outliers,
    run_label=snakemake.params.run_label,
    out_figure1=snakemake.output.figure1,
    out_histograms=snakemake.output.histograms,
    out_memorization=snakemake.output.memorization,
)
