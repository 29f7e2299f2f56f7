"""Table 1 beside the paper's: the paper's numbers (PAPER.md) and ours, cell by cell, with how
ours were obtained."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from brainmr.report.format import fmt, header, markdown_table
from brainmr.report.labels import OUTLIER_LABEL
from brainmr.report.table1 import COLUMNS, N_COLUMN

# PAPER.md, Table 1 (labels without the quotes around "brain").
PAPER_TABLE1 = pd.DataFrame(
    [
        ["AD", -423.95, -412.64, 3, 97, 98, 100],
        ["CN", -423.82, -412.03, 2, 98, 0, 100],
        ["AD (no brain)", -426.56, -418.90, 7, 92, 97, 99],
        ["CN (no brain)", -426.08, -415.96, 5, 95, 3, 100],
        [OUTLIER_LABEL, -507.05, -502.40, None, None, None, 1],
    ],
    columns=[*COLUMNS, N_COLUMN],
    dtype=object,  # keeps the counts integers beside the missing outlier counts
)


def normalise_label(label: str) -> str:
    return " ".join(label.replace('"', "").replace("'", "").split())


def vs_paper_markdown(
    ours: pd.DataFrame,
    cn_minus_ad: Mapping[str, float],
    run_label: str,
    synthetic: bool,
    kde: dict,
    cnn: dict,
    provenance: Mapping[str, object],
) -> str:
    """``ours``: Table 1 (table1.table1_frame); ``cn_minus_ad``: evaluate's CN − AD log-lik
    per row label of it (table1.cn_minus_ad)."""
    by_label = {normalise_label(r["generated set"]): r for _, r in ours.iterrows()}
    differences = {normalise_label(label): value for label, value in cn_minus_ad.items()}
    pairs = [
        ("AD log-lik", "AD log-lik"),
        ("CN log-lik", "CN log-lik"),
        ("CN − AD log-lik", None),
        ("predicted AD", "predicted AD"),
        ("predicted CN", "predicted CN"),
        ("misclassified (likelihood)", "misclassified (likelihood)"),
        (N_COLUMN, N_COLUMN),
    ]
    rows = []
    for _, paper in PAPER_TABLE1.iterrows():
        label = paper["generated set"]
        mine = by_label.get(normalise_label(label))
        cells = [label]
        for _name, column in pairs:
            if column is None:
                theirs = paper["CN log-lik"] - paper["AD log-lik"]
                our = differences.get(normalise_label(label), math.nan)
            else:
                theirs = paper[column]
                our = math.nan if mine is None else mine[column]
            cells.append(f"{fmt(theirs)} / {fmt(our)}")
        rows.append(cells)
    table = pd.DataFrame(rows, columns=["row", *[f"{n} (paper / ours)" for n, _ in pairs]])
    extra = [
        lbl
        for lbl in ours["generated set"]
        if normalise_label(lbl) not in {normalise_label(x) for x in PAPER_TABLE1["generated set"]}
    ]
    origin = "synthetic demo cohort and demo model" if synthetic else "real data (see run label)"
    lines = header("Table 1: the paper beside this run", run_label, synthetic)
    lines += [markdown_table(table), "", "## How ours were obtained", ""]
    lines += [f"- Data: {origin}."]
    lines += [f"- {key}: {value}" for key, value in provenance.items()]
    lines += [
        f"- This table: replicate seed {cnn.get('seed')}; KDE: {kde['components']} PCA components,"
        " bandwidths "
        + ", ".join(f"{g} {h:.4g}" for g, h in kde["bandwidths"].items())
        + f"; CNN held-out balanced accuracy {fmt(cnn.get('balanced_accuracy'), 3)}, "
        f"AUC {fmt(cnn.get('roc_auc'), 3)}. Across seeds: table1_summary.md.",
        "",
        "## Reading it",
        "",
        "- Absolute log-likelihoods depend on the KDE space (dimension, normalisation, bandwidth),"
        " which the paper does not give: compare the sign and size of CN − AD and the counts, "
        "not the raw values.",
        "- Counts are out of n (the paper's n: 100 per set, minus its one outlier).",
        f"- Rows of this run the paper lacks (see table1.md): {', '.join(extra) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"
