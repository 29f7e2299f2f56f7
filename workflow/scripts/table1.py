import _brainmr_path  # noqa: F401

from snakemake.script import snakemake

from brainmr.cohort import slice_table
from brainmr.evaluate import EvaluateConfig
from brainmr.io import read_tsv
from brainmr.logs import log_to
from brainmr.report import build_table1

log_to(snakemake.log[0])
slices = slice_table(read_tsv(snakemake.input.scans), snakemake.input.slices)
build_table1(
    generated=snakemake.input.generated,
    real=snakemake.input.real,
    conditions=snakemake.params.conditions,
    kde_json=snakemake.input.kde,
    classifier_metrics=snakemake.input.metrics,
    classifier=snakemake.input.classifier,
    train=slices[slices.split == "train"],
    cfg=EvaluateConfig(**snakemake.params.evaluate),
    run_label=snakemake.params.run_label,
    synthetic=snakemake.params.synthetic,
    provenance=snakemake.params.provenance,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_vs_paper=snakemake.output.vs_paper,
    out_metrics=snakemake.output.metrics,
    out_outliers=snakemake.output.outliers,
)
