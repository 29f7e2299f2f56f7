import _brainmr_path  # noqa: F401

from snakemake.script import snakemake

from brainmr.evaluate import EvaluateConfig
from brainmr.logs import log_to
from brainmr.report import make_figures

log_to(snakemake.log[0])
make_figures(
    generated=snakemake.input.generated,
    real=snakemake.input.real,
    conditions=snakemake.params.conditions,
    cfg=EvaluateConfig(**snakemake.params.evaluate),
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    outliers=snakemake.input.outliers,
    out_figure1=snakemake.output.figure1,
    out_histograms=snakemake.output.histograms,
    out_memorization=snakemake.output.memorization,
)
