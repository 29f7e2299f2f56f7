"""brainmr.report.summary: Table 1 across replicate seeds and the tests between conditions; on
hand-made rows with known answers, then on the toy run's table1_summary.csv/.md."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from toy_evaluation import wilson
from toy_run import CONDITIONS, SEEDS, VERDICT, sensitivity_rows

from brainmr import io
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.report.summary import (
    comparisons_markdown,
    summary_frame,
    summary_markdown,
    summary_markdown_rows,
)


def summary_rows() -> pd.DataFrame:
    """evaluate's summary of brain/AD (CNN not interpretable in a seed) and held-out real CN."""
    generated = {
        "condition": "brain",
        "group": "AD",
        "kind": "generated",
        "n_seeds": 2,
        "n": 12,
        "loglik_AD_mean": -31.7524,
        "loglik_AD_sd": 0.1362,
        "loglik_AD_low": -32.9764,
        "loglik_AD_high": -30.5284,
        "mean_prob_AD_mean": 0.76071,
        "mean_prob_AD_sd": 0.04158,
        "mean_prob_AD_low": 0.38709,
        "mean_prob_AD_high": 1.13432,
        "predicted_AD_seed_mean": 0.9167,
        "predicted_AD_seed_low": 0.0,
        "predicted_AD_seed_high": 1.0,
        "predicted_AD_per_seed": "6/6, 5/6",
        "predicted_AD": 11.0,
        "predicted_AD_pooled": 11 / 12,
        "predicted_AD_pooled_low": 0.6461,
        "predicted_AD_pooled_high": 0.9851,
        "misclassified_seed_mean": 0.0,
        "misclassified_seed_low": 0.0,
        "misclassified_seed_high": 0.0,
        "misclassified_per_seed": "0/6, 0/6",
        "misclassified": 0.0,
        "misclassified_pooled": 0.0,
        "misclassified_pooled_low": 0.0,
        "misclassified_pooled_high": 0.24249,
        "cnn_interpretable": False,
        "ood_reason": "seed 1: coverage 0.38 < 0.49",
    }
    real = generated | {
        "condition": REAL_CONDITION,
        "group": "CN",
        "kind": "real",
        "n": 10,
        "loglik_AD_mean": math.nan,
        "predicted_AD_seed_mean": math.nan,
        "misclassified_pooled": 0.1,
        "cnn_interpretable": True,
        "ood_reason": "",
    }
    return pd.DataFrame([real, generated]).astype({"cnn_interpretable": object})


def test_summary_rows_put_the_seed_mean_first_and_label_the_pooled_counts():
    rows = summary_markdown_rows(summary_rows(), CONDITIONS).set_index("set")
    assert rows.index.tolist() == ["AD", "held-out real CN"]
    ad = rows.loc["AD"]
    assert ad["seeds"] == 2 and ad["n"] == 12
    assert ad["AD log-lik"] == "-31.75 ± 0.14 [-32.98, -30.53]"
    assert ad["mean P(AD)"] == "0.761 ± 0.042 [0.387, 1.134]"
    assert ad["CN log-lik"] == ad["ventricle area (mm²)"] == "—"  # not in the summary
    assert ad["predicted AD"] == "0.917 [0.000, 1.000] †"
    assert ad["predicted AD per seed"] == "6/6, 5/6"
    assert ad["predicted AD, pooled (images independent)"] == "11/12 = 0.917 [0.646, 0.985] †"
    assert ad["misclassified, pooled (images independent)"] == "0/12 = 0.000 [0.000, 0.242]"
    real = rows.loc["held-out real CN"]
    assert real["AD log-lik"] == real["predicted AD"] == real["predicted AD per seed"] == "—"
    assert real["misclassified"] == "0.000 [0.000, 0.000]"
    assert real["misclassified, pooled (images independent)"] == "—"  # counted once, not pooled


def test_summary_frame_labels_and_orders_every_row():
    frame = summary_frame(summary_rows(), CONDITIONS)
    assert frame.columns[0] == "set" and frame["set"].tolist() == ["AD", "held-out real CN"]
    assert frame["n"].tolist() == [12, 10]


def test_comparisons_name_both_conditions_and_mark_what_the_cnn_cannot_read():
    comparison = {
        "group": "AD",
        "measure": "predicted_AD",
        "condition_a": "brain",
        "condition_b": "third",
        "difference": -0.25,
        "low": -0.5512,
        "high": 0.0512,
        "p_value": 0.0123456,
        "detectable": 0.3456,
        "sign_per_seed": "every seed",
        "k_a": 12,
        "n_a": 12,
        "k_b": 9,
        "n_b": 12,
        "pooled_p_value": math.nan,
        "cnn_interpretable": False,
    }
    (row,) = comparisons_markdown(pd.DataFrame([comparison]), CONDITIONS).to_dict("records")
    assert row == {
        "class": "AD",
        "measure": "predicted AD (CNN) †",
        "A": "AD",
        "B": "AD (third)",
        "B − A (seed mean)": "-0.250 [-0.551, 0.051]",
        "paired t p": "0.0123",
        "detectable (80% power)": "±0.346",
        "every seed same sign": "every seed",
        "pooled A: k/n": "12/12",
        "pooled B: k/n": "9/12",
        "pooled Fisher p (images independent)": "—",
    }
    # read back from TSV an empty note is NaN: the p value shows, not "nan"
    (row,) = comparisons_markdown(
        pd.DataFrame([comparison | {"note": math.nan}]), CONDITIONS
    ).to_dict("records")
    assert row["paired t p"] == "0.0123"
    flat = comparison | {"p_value": math.nan, "detectable": math.nan}
    flat |= {"note": "no spread between seeds", "low": -0.25, "high": -0.25}
    (row,) = comparisons_markdown(pd.DataFrame([flat]), CONDITIONS).to_dict("records")
    assert row["paired t p"] == "no spread between seeds"
    assert row["detectable (80% power)"] == "—"


def test_a_zero_width_seed_interval_says_there_is_no_spread():
    from brainmr.report.summary import seed_interval

    assert seed_interval(1.0, 1.0) == "(no spread between seeds)"
    assert seed_interval(0.2, 0.4) == "[0.200, 0.400]"


def test_summary_markdown_ends_with_the_judges_across_seeds():
    across = {"accuracy": {"mean": 0.95, "sd": 0.0354, "low": 0.6323, "high": 1.2677}}
    md = summary_markdown(
        summary=summary_rows(),
        comparisons=pd.DataFrame(columns=["group", "measure"]),
        verdict=VERDICT | {"cnn": {"across_seeds": across}},
        sensitivity=sensitivity_rows(),
        conditions=CONDITIONS,
        run_label="adni run",
        synthetic=False,
    )
    assert md.startswith("# Table 1 across replicate seeds\n\nRun: adni run\n\nSeeds: 0, 1 (")
    assert "| AD | 2 | 12 | -31.75 ± 0.14 [-32.98, -30.53] |" in md
    assert md.endswith(
        "- CNN on held-out reals, across seeds: accuracy 0.950 ± 0.035 [0.632, 1.268].\n"
        "- † CNN counts not interpretable in at least one seed: AD: seed 1: coverage 0.38 < "
        "0.49.\n"
    )


def test_summary_headline_is_seed_level_and_pooled_is_labelled(toy_run):
    by_seed = io.read_tsv(toy_run["ev"] / "by_seed.tsv")
    summary = pd.read_csv(toy_run["summary_csv"]).set_index("set")
    brain_ad = by_seed[(by_seed["condition"] == "brain") & (by_seed["group"] == "AD")]
    assert sorted(brain_ad["seed"]) == SEEDS
    assert summary.loc["AD", "n"] == brain_ad["n"].sum()
    k, n = brain_ad["predicted_AD"].sum(), brain_ad["n"].sum()
    assert summary.loc["AD", "predicted_AD"] == k
    assert summary.loc["AD", "loglik_AD_mean"] == pytest.approx(brain_ad["loglik_AD"].mean())
    fractions = brain_ad["predicted_AD"] / brain_ad["n"]
    assert summary.loc["AD", "predicted_AD_seed_mean"] == pytest.approx(fractions.mean())
    assert summary.loc["AD", "predicted_AD_pooled"] == pytest.approx(k / n)
    low, high = summary.loc["AD", ["predicted_AD_pooled_low", "predicted_AD_pooled_high"]]
    assert (low, high) == pytest.approx(wilson(int(k), int(n)), abs=1e-5)
    # the held-out reals: the same images in every seed, counted once
    real = by_seed[(by_seed["condition"] == "real") & (by_seed["group"] == "CN")]
    assert summary.loc["held-out real CN", "n"] == real["n"].iloc[0]
    md = toy_run["summary_md"].read_text(encoding="utf-8")
    assert md.startswith("# Table 1 across replicate seeds\n\nRun: toy run\n")
    assert "paired t" in md and "images independent" in md and "**SYNTHETIC DEMO DATA" in md
    assert "likelihood verdict" in md and "Sensitivity" in md and "detectable" in md
    assert f"Seeds: {', '.join(map(str, SEEDS))} (each" in md
