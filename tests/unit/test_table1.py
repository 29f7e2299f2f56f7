"""brainmr.report.table1: Table 1 of one seed and the notes below it; on hand-made rows with
known answers, then on the toy run's table1.csv/.md (the toy_run fixture, tests/toy_run.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from toy_run import (
    CEILING_ROWS,
    CONDITIONS,
    EXTRA_ROWS,
    N_PER_SET,
    PAPER_ROWS,
    TAIL_ROWS,
    VERDICT,
    sensitivity_rows,
)

from brainmr import io
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.evaluate.table1.replicates import OUTLIER_SET
from brainmr.report.table1 import (
    cn_minus_ad,
    cnn_line,
    kde_line,
    marked,
    sensitivity_line,
    table1_frame,
    table1_notes,
    verdict_line,
    with_prob_intervals,
)

PAPER_COLUMNS = [
    "generated set",
    "AD log-lik",
    "CN log-lik",
    "predicted AD",
    "predicted CN",
    "misclassified (likelihood)",
]


def by_seed_rows() -> pd.DataFrame:
    """Two seeds of evaluate's by_seed table: brain/AD, the outlier row and held-out real CN."""
    common = dict(mean_prob_AD=0.75, cnn_interpretable=True, ventricle_area_mm2=700.0)
    rows = [
        # seed, condition, group, kind, n, n_total, n_outliers, loglik AD/CN, pred AD/CN, miscl.
        (0, REAL_CONDITION, "CN", "real", 9, 10, 1, -41.3, -32.7, 1, 8, 1),
        (0, OUTLIER_SET, "", "outlier", 2, 2, 2, -259.86, -259.57, math.nan, math.nan, math.nan),
        (0, "brain", "AD", "generated", 5, 6, 1, -31.85, -44.24, 4, 1, 2),
        (1, "brain", "AD", "generated", 6, 6, 0, -30.0, -40.0, 6, 0, 0),
    ]
    columns = ["seed", "condition", "group", "kind", "n", "n_total", "n_outliers", "loglik_AD"]
    columns += ["loglik_CN", "predicted_AD", "predicted_CN", "misclassified"]
    return pd.DataFrame(rows, columns=columns).assign(**common)


def test_table1_frame_orders_the_rows_and_dashes_the_outliers_counts():
    table = table1_frame(by_seed_rows(), 0, CONDITIONS).set_index("generated set")
    assert table.index.tolist() == ["AD", "outlier", "held-out real CN"]
    assert table.loc["AD"].tolist() == [-31.85, -44.24, 4, 1, 2, 5, 1, 0.75, "—", "yes", 700.0]
    assert table.loc["outlier", "n"] == 2 and table.loc["outlier", "AD log-lik"] == -259.86
    for column in ("predicted AD", "predicted CN", "outliers", "mean P(AD)", "P(AD) 95% CI"):
        assert table.loc["outlier", column] == "—", column
    assert table.loc["held-out real CN", "misclassified (likelihood)"] == 1


def test_prob_intervals_and_the_not_interpretable_mark():
    table = table1_frame(by_seed_rows(), 0, CONDITIONS)
    metrics = pd.DataFrame(
        {"condition": ["brain"], "group": ["AD"], "prob_AD_low": [0.6284], "prob_AD_high": [0.8351]}
    )
    filled = with_prob_intervals(table, metrics, CONDITIONS).set_index("generated set")
    assert filled["P(AD) 95% CI"].tolist() == ["[0.628, 0.835]", "—", "—"]
    table.loc[0, "CNN counts interpretable"] = "no"
    view = marked(table)
    assert view.loc[0, ["predicted AD", "predicted CN"]].tolist() == ["4 †", "1 †"]
    assert view.loc[2, ["predicted AD", "predicted CN"]].tolist() == [1, 8]  # interpretable


CNN = {
    "accuracy": 0.95,
    "bootstrap_accuracy_low": 0.8389,
    "bootstrap_accuracy_high": 1.0,
    "balanced_accuracy": 0.9444,
    "roc_auc": 0.98765,
    "bootstrap_auc_low": 0.9,
    "bootstrap_auc_high": 1.0,
    "brier": 0.10140,
    "n_test_AD": 10,
    "n_test_CN": 10,
    "seed": 0,
    "split_balance": {"warnings": ["age differs"]},
}
KDE = {
    "space": "PCA of pixels",
    "components": 10,
    "explained_variance_total": 0.8123,
    "n_per_class": {"AD": 16, "CN": 16},
    "bandwidth_rule": "shared",
    "balance": "none",
    "bandwidths": {"AD": 3.41390, "CN": 0.5},
    "at_bound": True,
}


def test_judge_lines_say_the_numbers_they_are_given():
    assert cnn_line(CNN) == (
        "accuracy 0.950 (Wilson 95% CI [0.839, 1.000]), balanced accuracy 0.944, ROC AUC 0.988 "
        "(CI [0.900, 1.000]), Brier score 0.101"
    )
    verdict = verdict_line(VERDICT)
    assert verdict.startswith(
        "the likelihood verdict (AD when AD > CN) as a classifier of held-out real slices "
        "(n = 10 AD + 10 CN): accuracy 0.950 (Wilson 95% CI [0.764, 0.991]), ROC AUC on the "
        "log-likelihood margin 1.000 (bootstrap 95% CI —)."
    )
    assert kde_line(KDE) == (
        "KDE space: PCA of pixels; 10 components (81.2% of variance). Gaussian KDE per class on "
        "its training slices (n = AD 16, CN 16); bandwidth rule shared, balance none; bandwidths "
        "AD 3.414, CN 0.5 (AT A SEARCH BOUND: widen bandwidth_bounds)."
    )
    assert sensitivity_line(sensitivity_rows()) == (
        "misclassified fraction (pooled over seeds) across PCA components x bandwidth rule x "
        "balance (2 variants, results/evaluate/kde_sensitivity.csv): brain/AD 0.10–0.50."
    )


def test_notes_count_the_outliers_and_name_the_sets_the_cnn_cannot_read():
    metrics = pd.DataFrame(
        {
            "condition": ["brain", REAL_CONDITION],
            "group": ["AD", "CN"],
            "cnn_interpretable": [False, True],
            "ood_reason": ["coverage 0.38 < 0.49", ""],
        }
    )
    lines = table1_notes(
        kde=KDE,
        cnn=CNN,
        verdict=VERDICT,
        metrics=metrics,
        seed=0,
        mad_k=5.0,
        sensitivity=sensitivity_rows(),
        conditions=CONDITIONS,
    )
    text = "\n".join(lines)
    assert "- Replicate seed 0 of [0, 1] (DreamBooth" in text
    assert "k = 5; threshold = -44.12. It flags 1 generated image(s) and 1 of 10 held-out" in text
    assert "- CNN (held-out test, n = 10 AD + 10 CN): accuracy 0.950" in text
    assert "- † CNN counts NOT INTERPRETABLE for AD (coverage 0.38 < 0.49). " in text
    assert lines[-1] == "- WARNING, train/test split: age differs"
    seed1 = "\n".join(
        table1_notes(
            kde=KDE,
            cnn=CNN,
            verdict=VERDICT,
            metrics=metrics,
            seed=1,
            mad_k=5.0,
            sensitivity=sensitivity_rows(),
            conditions=CONDITIONS,
        )
    )
    assert "It flags 0 generated image(s) and 1 of 10 held-out" in seed1  # the verdict's counts


def test_cn_minus_ad_is_evaluates_column_by_row_label():
    by_seed = by_seed_rows().assign(loglik_CN_minus_AD=[8.6, 0.29, -12.39, -10.0])
    assert cn_minus_ad(by_seed, 0, CONDITIONS) == {
        "held-out real CN": 8.6,
        "outlier": 0.29,
        "AD": -12.39,
    }


def test_table1_has_the_papers_columns_and_rows_plus_a_third_condition(toy_run):
    table = pd.read_csv(toy_run["csv"])
    assert list(table.columns[: len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert table["generated set"].tolist() == PAPER_ROWS + EXTRA_ROWS + TAIL_ROWS
    outlier = table.set_index("generated set").loc["outlier"]
    assert outlier["n"] == 1 and outlier["predicted AD"] == "—"  # seed 0's noise image
    counts = table.set_index("generated set").loc[PAPER_ROWS + EXTRA_ROWS]
    per_set = counts["predicted AD"].astype(int) + counts["predicted CN"].astype(int)
    assert (per_set == counts["n"]).all()
    assert (counts["n"] + counts["outliers"].astype(int) == N_PER_SET).all()
    assert counts.loc["AD (no brain)", "outliers"] == "1"
    metrics = io.read_tsv(toy_run["set_metrics"][0]).astype({"condition": str})
    metrics = metrics[metrics["condition"] != REAL_CONDITION]
    expected = np.where(metrics["cnn_interpretable"].astype(bool), "yes", "no")
    table = table.set_index("generated set")
    interpretable = table.loc[PAPER_ROWS + EXTRA_ROWS + CEILING_ROWS, "CNN counts interpretable"]
    assert interpretable.tolist() == expected.tolist()


def test_table1_numbers_trace_back_to_the_seed0_scores(toy_run):
    table = pd.read_csv(toy_run["csv"]).set_index("generated set")
    scores = io.read_tsv(toy_run["scores"][0])
    noise = scores[scores["path"].str.endswith("seed0/nobrain_AD/nobrain_AD_002.png")]
    assert noise["outlier"].all()  # the noise image fails the outlier rule
    part = scores[(scores["condition"] == "nobrain") & (scores["group"] == "AD")]
    kept = part[~part["outlier"]]
    row = table.loc["AD (no brain)"]
    assert float(row["AD log-lik"]) == pytest.approx(kept["loglik_AD"].mean(), abs=1e-4)
    assert float(row["CN log-lik"]) == pytest.approx(kept["loglik_CN"].mean(), abs=1e-4)
    assert int(row["misclassified (likelihood)"]) == int(
        (kept["loglik_CN"] >= kept["loglik_AD"]).sum()  # the verdict's tie rule: a tie is CN
    )
    assert int(row["predicted AD"]) == int((kept["predicted"] == "AD").sum())
    real = scores[(scores["condition"] == "real") & (scores["group"] == "CN")]
    assert float(table.loc["held-out real CN", "CN log-lik"]) == pytest.approx(
        real.loc[~real["outlier"], "loglik_CN"].mean(), abs=1e-4
    )
    outliers = scores[scores["outlier"] & (scores["condition"] != "real")]
    assert float(table.loc["outlier", "AD log-lik"]) == pytest.approx(
        outliers["loglik_AD"].mean(), abs=1e-4
    )


def test_ceiling_rows_are_scored_by_every_judge_and_said_in_words(toy_run):
    table = pd.read_csv(toy_run["csv"]).set_index("generated set")
    by_seed = io.read_tsv(toy_run["ev"] / "by_seed.tsv").astype({"condition": str})
    ceiling = by_seed[(by_seed["seed"] == 0) & (by_seed["kind"] == "ceiling")]
    assert len(ceiling) == len(CEILING_ROWS)
    for label, r in zip(CEILING_ROWS, ceiling.itertuples(), strict=True):
        row = table.loc[label]
        assert float(row["AD log-lik"]) == pytest.approx(r.loglik_AD, abs=1e-4)
        assert float(row["ventricle area (mm²)"]) == pytest.approx(r.ventricle_area_mm2, abs=1e-4)
    # the toy AD slices have the larger ventricles, through the bottleneck too
    ventricles = table.loc[CEILING_ROWS, "ventricle area (mm²)"].astype(float)
    assert ventricles.iloc[0] > ventricles.iloc[1] > 0
    md = toy_run["md"].read_text(encoding="utf-8")
    assert "## What this table found" in md and "bottleneck alone" in md
    assert "of the real difference reproduced" in md


def test_markdown_records_label_warning_and_choices(toy_run):
    md = toy_run["md"].read_text(encoding="utf-8")
    assert md.startswith("# Table 1: KDE log-likelihood and CNN predictions of generated images")
    assert "Run: toy run" in md and "**SYNTHETIC DEMO DATA" in md
    for needle in (
        "KDE space",
        "bandwidth rule shared",
        "threshold =",
        "held-out real slices",
        "bootstrap 95% CI",
        "Brier",
        "likelihood verdict",
        "across PCA components",
        "| AD (third) |",
    ):
        assert needle in md, needle
