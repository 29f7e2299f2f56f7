"""brainmr.evaluate.replicates and .outliers on score tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainmr.evaluate.outliers import flag_outliers
from brainmr.evaluate.replicates import compare_conditions, seed_rows, summarise

CONDITIONS = ["brain", "nobrain"]


def score_table(condition, group, n, n_misclassified, n_pred_ad, rng, loglik=-400.0):
    """n images; the first n_misclassified prefer the other class's KDE, the first n_pred_ad
    are predicted AD by the CNN."""
    other = "CN" if group == "AD" else "AD"
    own = loglik + rng.normal(0, 1, n)
    rows = pd.DataFrame(
        {
            "path": [f"{condition}/{group}/{i}.png" for i in range(n)],
            "condition": condition,
            "group": group,
            f"loglik_{group}": own,
            f"loglik_{other}": own - 2.0,
            "prob_AD": np.where(np.arange(n) < n_pred_ad, 0.9, 0.1),
            "nn_corr": 0.5,
        }
    )
    rows.loc[: n_misclassified - 1, f"loglik_{other}"] = own[:n_misclassified] + 2.0
    rows["predicted"] = np.where(rows["prob_AD"] >= 0.5, "AD", "CN")
    return rows


def one_seed(seed, counts, rng):
    """counts: (condition, group) -> (n, misclassified, predicted AD)."""
    generated = pd.concat(
        [score_table(c, g, *counts[(c, g)], rng) for c, g in counts], ignore_index=True
    )
    real = pd.concat(
        [score_table("real", g, 20, 3, 15 if g == "AD" else 4, rng) for g in ("AD", "CN")],
        ignore_index=True,
    )
    scores = flag_outliers(generated, real, mad_k=5.0)
    metrics = pd.DataFrame(
        [
            {"condition": c, "group": g, "cnn_interpretable": c != "nobrain", "ood_reason": ""}
            for c, g in [*counts, ("real", "AD"), ("real", "CN")]
        ]
    )
    return seed_rows(scores, metrics, seed, CONDITIONS)


@pytest.fixture(scope="module")
def by_seed():
    rng = np.random.default_rng(0)
    seeds = {
        0: {("brain", "AD"): (100, 98, 3), ("brain", "CN"): (100, 0, 2)},
        1: {("brain", "AD"): (100, 90, 5), ("brain", "CN"): (100, 4, 6)},
    }
    for counts in seeds.values():
        counts |= {("nobrain", "AD"): (99, 80, 7), ("nobrain", "CN"): (100, 3, 5)}
    return pd.concat([one_seed(s, c, rng) for s, c in seeds.items()], ignore_index=True)


def row(table, seed, condition, group):
    part = table[(table.seed == seed) & (table.condition == condition) & (table.group == group)]
    assert len(part) == 1
    return part.iloc[0]


def test_seed_rows_count_known_nonzero_misclassifications_and_predictions(by_seed):
    r = row(by_seed, 0, "brain", "AD")
    assert (r.n, r.misclassified, r.predicted_AD, r.predicted_CN) == (100, 98, 3, 97)
    assert row(by_seed, 1, "brain", "CN").misclassified == 4
    assert row(by_seed, 0, "nobrain", "AD").misclassified == 80
    real_ad = row(by_seed, 0, "real", "AD")
    assert (real_ad.misclassified, real_ad.predicted_AD) == (3, 15)
    assert not row(by_seed, 0, "nobrain", "CN").cnn_interpretable


def test_outlier_rule_is_applied_to_reals_and_flags_a_failed_image():
    rng = np.random.default_rng(1)
    generated = score_table("brain", "AD", 10, 0, 0, rng)
    generated.loc[3, ["loglik_AD", "loglik_CN"]] = [-900.0, -905.0]  # a clear failure
    real = pd.concat([score_table("real", g, 30, 0, 0, rng) for g in ("AD", "CN")])
    real.iloc[0, real.columns.get_loc("loglik_AD")] = -700.0  # one real far below the rest
    real.iloc[0, real.columns.get_loc("loglik_CN")] = -702.0
    scores = flag_outliers(generated, real.reset_index(drop=True), mad_k=5.0)
    flagged = scores[scores.outlier]
    assert set(flagged.path) == {"brain/AD/3.png", "real/AD/0.png"}
    # the threshold is median - 5 x normal-scaled MAD of the reals' best log-likelihood
    best = np.maximum(real.loglik_AD, real.loglik_CN)
    expected = np.median(best) - 5 * stats.median_abs_deviation(best, scale="normal")
    assert scores.threshold.iloc[0] == pytest.approx(expected)


def test_summary_means_and_pooled_counts_match_scipy(by_seed):
    summary = summarise(by_seed)
    s = summary[(summary.condition == "brain") & (summary.group == "AD")].iloc[0]
    assert s.n == 200 and s.predicted_AD == 8 and s.misclassified == 188
    assert s.predicted_AD_per_seed == "3/100, 5/100"
    values = [row(by_seed, seed, "brain", "AD").loglik_AD for seed in (0, 1)]
    low, high = stats.t.interval(0.95, 1, loc=np.mean(values), scale=stats.sem(values))
    assert s.loglik_AD_mean == pytest.approx(np.mean(values))
    assert (s.loglik_AD_low, s.loglik_AD_high) == pytest.approx((low, high))
    # Wilson interval, closed form
    p, n, z = 8 / 200, 200, stats.norm.ppf(0.975)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (s.predicted_AD_low, s.predicted_AD_high) == pytest.approx(
        (centre - half, centre + half)
    )
    outlier = summary[summary.condition == "outlier"].iloc[0]
    assert outlier.n == 0


def test_comparisons_use_fishers_exact_test_on_pooled_counts(by_seed):
    comparisons = compare_conditions(by_seed, CONDITIONS)
    r = comparisons[(comparisons.group == "AD") & (comparisons.measure == "predicted_AD")].iloc[0]
    assert (r.k_a, r.n_a, r.k_b, r.n_b) == (8, 200, 14, 198)
    expected = stats.fisher_exact([[8, 192], [14, 184]]).pvalue
    assert r.p_value == pytest.approx(expected)
    assert r.sign_per_seed == "all +"  # 3/100 -> 7/99 and 5/100 -> 7/99
    assert not r.cnn_interpretable  # nobrain's CNN counts are flagged out of distribution
    m = comparisons[(comparisons.group == "CN") & (comparisons.measure == "misclassified")].iloc[0]
    assert m.sign_per_seed == "mixed"  # 0 -> 3 and 4 -> 3
    assert m.p_value == pytest.approx(stats.fisher_exact([[4, 196], [6, 194]]).pvalue)


def test_identical_conditions_give_no_verdict(by_seed):
    """Two conditions with the same counts: p = 1 and no sign."""
    same = by_seed.copy()
    nobrain = same.condition == "nobrain"
    brain = same[same.condition == "brain"].copy()
    same = pd.concat([same[~nobrain], brain.assign(condition="nobrain")], ignore_index=True)
    comparisons = compare_conditions(same, CONDITIONS)
    assert comparisons.p_value.tolist() == pytest.approx([1.0] * len(comparisons))
    assert (comparisons.sign_per_seed == "mixed").all()
