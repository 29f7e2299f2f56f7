"""brainmr.report.paper: Table 1 beside the paper's, on hand-made rows with known answers and on
the toy run's table1_vs_paper.md."""

from __future__ import annotations

import math

import pandas as pd

from brainmr.report.paper import PAPER_TABLE1, normalise_label, vs_paper_markdown
from brainmr.report.table1 import COLUMNS, N_COLUMN

KDE = {"components": 10, "bandwidths": {"AD": 3.41390, "CN": 0.5}}
CNN = {"seed": 0, "balanced_accuracy": 0.9444, "roc_auc": 0.98765}


def test_the_papers_table1_as_published():
    paper = PAPER_TABLE1.set_index("generated set")
    assert paper.index.tolist() == ["AD", "CN", "AD (no brain)", "CN (no brain)", "outlier"]
    assert paper.loc["AD (no brain)"].tolist() == [-426.56, -418.90, 7, 92, 97, 99]
    assert paper.loc["CN", "misclassified (likelihood)"] == 0
    assert paper.loc["outlier", N_COLUMN] == 1 and paper.loc["outlier", "predicted AD"] is None


def test_labels_match_without_quotes_or_extra_spaces():
    assert normalise_label('AD  (no "brain")') == "AD (no brain)"
    assert normalise_label("CN ('no brain')") == "CN (no brain)"


def test_vs_paper_puts_ours_beside_every_paper_cell():
    ours = pd.DataFrame(
        [
            ["AD", -31.8487, -44.2397, 6, 0, 0, 6],
            ['CN (no "brain")', -41.72, -32.98, 1, 5, 0, 6],
            ["AD (third)", -32.18, -44.44, 6, 0, 0, 6],
        ],
        columns=[*COLUMNS, N_COLUMN],
    )
    # evaluate's CN − AD per row label (by_seed's loglik_CN_minus_AD), matched without quotes
    differences = {"AD": -12.391, 'CN (no "brain")': 8.74, "AD (third)": math.nan}
    md = vs_paper_markdown(ours, differences, "toy run", True, KDE, CNN, {"base model": "toy"})
    lines = md.splitlines()
    assert lines[:4] == ["# Table 1: the paper beside this run", "", "Run: toy run", ""]
    assert lines[6] == (
        "| row | AD log-lik (paper / ours) | CN log-lik (paper / ours) | CN − AD log-lik "
        "(paper / ours) | predicted AD (paper / ours) | predicted CN (paper / ours) | "
        "misclassified (likelihood) (paper / ours) | n (paper / ours) |"
    )
    assert (
        "| AD | -423.95 / -31.85 | -412.64 / -44.24 | 11.31 / -12.39 | 3 / 6 | 97 / 0 | 98 / 0 "
        "| 100 / 6 |"
    ) in lines
    assert (
        "| CN (no brain) | -426.08 / -41.72 | -415.96 / -32.98 | 10.12 / 8.74 | 5 / 1 | 95 / 5 "
        "| 3 / 0 | 100 / 6 |"
    ) in lines
    assert (
        "| CN | -423.82 / — | -412.03 / — | 11.79 / — | 2 / — | 98 / — | 0 / — | 100 / — |"
    ) in lines  # a paper row this run lacks
    outlier = "| outlier | -507.05 / — | -502.40 / — | 4.65 / — | — / — | — / — | — / — | 1 / — |"
    assert outlier in lines
    assert "- Data: synthetic demo cohort and demo model." in lines
    assert "- base model: toy" in lines
    assert (
        "- This table: replicate seed 0; KDE: 10 PCA components, bandwidths AD 3.414, CN 0.5; "
        "CNN held-out balanced accuracy 0.944, AUC 0.988. Across seeds: table1_summary.md."
    ) in lines
    assert lines[-1] == "- Rows of this run the paper lacks (see table1.md): AD (third)."


def test_vs_paper_of_the_toy_run(toy_run):
    vs = toy_run["vs_paper"].read_text(encoding="utf-8")
    assert "| AD (no brain) | -426.56 / " in vs and "- base model: toy" in vs
    assert "- replicate seeds: [0, 1]" in vs
    assert vs.endswith(
        "- Rows of this run the paper lacks (see table1.md): AD (third), CN (third), "
        "held-out real AD through the generator (vae32), held-out real CN through the generator "
        "(vae32), held-out real AD, held-out real CN.\n"
    )
