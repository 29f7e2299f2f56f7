"""brainmr.evaluate.table1.replicates and .outliers on score tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainmr.evaluate.judges.outliers import flag_outliers, flag_references
from brainmr.evaluate.stats.binary import bootstrap_binary_metrics
from brainmr.evaluate.table1.replicates import (
    compare_conditions,
    likelihood_verdict_on_reals,
    outlier_counts,
    seed_rows,
    summarise,
)

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


def one_seed(seed, counts, rng, real):
    """counts: (condition, group) -> (n, misclassified, predicted AD); ``real``: the held-out
    reals' scores (the seed's CNN calls one more real AD image AD per seed)."""
    generated = pd.concat(
        [score_table(c, g, *counts[(c, g)], rng) for c, g in counts], ignore_index=True
    )
    real = real.copy()
    first_cn = real.index[(real.group == "AD") & (real.prob_AD < 0.5)][:seed]
    real.loc[first_cn, ["prob_AD", "predicted"]] = [0.9, "AD"]
    scores = flag_outliers(generated, flag_references(real, real.iloc[:0], mad_k=5.0))
    metrics = pd.DataFrame(
        [
            {"condition": c, "group": g, "cnn_interpretable": c != "nobrain", "ood_reason": ""}
            for c, g in [*counts, ("real", "AD"), ("real", "CN")]
        ]
    )
    return scores, seed_rows(scores, metrics, seed, CONDITIONS)


def real_scores(rng):
    """The held-out reals: the same images (KDE, outliers) in every seed."""
    return pd.concat(
        [score_table("real", g, 20, 3, 15 if g == "AD" else 4, rng) for g in ("AD", "CN")],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    seeds = {
        0: {("brain", "AD"): (100, 98, 3), ("brain", "CN"): (100, 0, 2)},
        1: {("brain", "AD"): (100, 90, 5), ("brain", "CN"): (100, 4, 6)},
        2: {("brain", "AD"): (100, 94, 4), ("brain", "CN"): (100, 2, 3)},
    }
    for counts in seeds.values():
        counts |= {("nobrain", "AD"): (99, 80, 7), ("nobrain", "CN"): (100, 3, 5)}
    reals = real_scores(rng)
    out = [one_seed(s, c, np.random.default_rng(s), reals) for s, c in seeds.items()]
    references = flag_references(reals, reals.iloc[:0], mad_k=5.0)
    return references, out[0][0], pd.concat([table for _, table in out], ignore_index=True)


@pytest.fixture(scope="module")
def by_seed(run):
    return run[2]


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
    real = real.reset_index(drop=True)
    scores = flag_outliers(generated, flag_references(real, real.iloc[:0], mad_k=5.0))
    flagged = scores[scores.outlier]
    assert set(flagged.path) == {"brain/AD/3.png", "real/AD/0.png"}
    # the threshold is median - 5 x normal-scaled MAD of the reals' best log-likelihood
    best = np.maximum(real.loglik_AD, real.loglik_CN)
    expected = np.median(best) - 5 * stats.median_abs_deviation(best, scale="normal")
    assert scores.threshold.iloc[0] == pytest.approx(expected)


def test_summary_headline_is_the_seed_mean_and_pooled_counts_are_secondary(run):
    references, _, by_seed = run
    summary = summarise(by_seed, references)
    s = summary[(summary.condition == "brain") & (summary.group == "AD")].iloc[0]
    assert s.n == 300 and s.predicted_AD == 12 and s.misclassified == 282
    assert s.predicted_AD_per_seed == "3/100, 5/100, 4/100"
    fractions = [0.03, 0.05, 0.04]
    low, high = stats.t.interval(0.95, 2, loc=0.04, scale=stats.sem(fractions))
    assert s.predicted_AD_seed_mean == pytest.approx(0.04)
    assert (s.predicted_AD_seed_low, s.predicted_AD_seed_high) == pytest.approx((low, high))
    values = [row(by_seed, seed, "brain", "AD").loglik_AD for seed in (0, 1, 2)]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (s.loglik_AD_low, s.loglik_AD_high) == pytest.approx((low, high))
    # pooled over seeds, images treated as independent: Wilson, as scipy computes it
    ci = stats.binomtest(12, 300).proportion_ci(method="wilson")
    assert (s.predicted_AD_pooled_low, s.predicted_AD_pooled_high) == pytest.approx(
        (ci.low, ci.high)
    )
    assert s.unit == "seeds"
    outlier = summary[summary.condition == "outlier"].iloc[0]
    assert outlier.n == 0


def test_real_rows_are_counted_once_and_their_cnn_across_seeds(run):
    """The held-out reals are the same 20 images in every seed: 3 of 20 misclassified is 3/20
    with a Wilson interval on 20 images, not 9/60; the log-likelihood interval is across the
    images (not of zero width across identical seeds); the CNN, one per seed, varies."""
    references, _, by_seed = run
    summary = summarise(by_seed, references)
    r = summary[(summary.condition == "real") & (summary.group == "AD")].iloc[0]
    assert r.n == 20 and r.misclassified == 3
    ci = stats.binomtest(3, 20).proportion_ci(method="wilson")
    assert (r.misclassified_pooled_low, r.misclassified_pooled_high) == pytest.approx(
        (ci.low, ci.high)
    )
    assert r.misclassified_seed_mean == pytest.approx(0.15)
    real = references[references.group == "AD"]
    real = real[(real.condition == "real") & ~real.outlier]
    low, high = stats.t.interval(
        0.95, len(real) - 1, loc=real.loglik_AD.mean(), scale=stats.sem(real.loglik_AD)
    )
    assert (r.loglik_AD_low, r.loglik_AD_high) == pytest.approx((low, high))
    assert r.loglik_AD_high - r.loglik_AD_low > 0.1
    # CNN: 15, 16, 17 of 20 called AD by the seeds' CNNs
    assert r.predicted_AD_seed_mean == pytest.approx(0.8)
    assert r.predicted_AD_seed_low < 0.8 < r.predicted_AD_seed_high
    assert np.isnan(r.get("predicted_AD_pooled", np.nan))  # never pooled over seeds


def test_a_set_missing_from_set_metrics_is_withheld(run):
    _, first, _ = run
    metrics = pd.DataFrame(
        [{"condition": "brain", "group": "AD", "cnn_interpretable": True, "ood_reason": ""}]
    )
    table = seed_rows(first, metrics, 0, CONDITIONS)
    assert table.set_index(["condition", "group"]).loc[("brain", "AD"), "cnn_interpretable"]
    missing = table.set_index(["condition", "group"]).loc[("brain", "CN")]
    assert not missing.cnn_interpretable and "fails closed" in missing.ood_reason


def test_comparisons_are_paired_across_seeds_with_pooled_fisher_beside(by_seed):
    comparisons = compare_conditions(by_seed, CONDITIONS)
    r = comparisons[(comparisons.group == "AD") & (comparisons.measure == "predicted_AD")].iloc[0]
    assert (r.k_a, r.n_a, r.k_b, r.n_b) == (12, 300, 21, 297)
    differences = np.array([7 / 99 - 0.03, 7 / 99 - 0.05, 7 / 99 - 0.04])
    assert r.difference == pytest.approx(differences.mean())
    assert r.p_value == pytest.approx(stats.ttest_1samp(differences, 0).pvalue)
    # pooled, B against A: the odds ratio points the way of the difference
    expected = stats.fisher_exact([[21, 276], [12, 288]])
    assert r.pooled_p_value == pytest.approx(expected.pvalue)
    assert r.pooled_odds_ratio == pytest.approx(expected.statistic) and r.pooled_odds_ratio > 1
    assert r.pooled_difference > 0 and r.difference > 0
    assert r.sign_per_seed == "all +"
    assert r.detectable > 0
    assert not r.cnn_interpretable  # nobrain's CNN counts are flagged out of distribution
    m = comparisons[(comparisons.group == "CN") & (comparisons.measure == "misclassified")].iloc[0]
    assert m.sign_per_seed == "mixed"  # 0 -> 3, 4 -> 3, 2 -> 3


def test_identical_conditions_give_no_verdict(by_seed):
    """Two conditions with the same counts: no spread between seeds, so no p and no detectable
    difference (a zero spread from 3 seeds is not certainty), and no sign."""
    same = by_seed.copy()
    nobrain = same.condition == "nobrain"
    brain = same[same.condition == "brain"].copy()
    same = pd.concat([same[~nobrain], brain.assign(condition="nobrain")], ignore_index=True)
    comparisons = compare_conditions(same, CONDITIONS)
    assert comparisons.p_value.isna().all() and comparisons.detectable.isna().all()
    assert (comparisons.note == "no spread between seeds").all()
    assert comparisons.pooled_p_value.tolist() == pytest.approx([1.0] * len(comparisons))
    assert (comparisons.sign_per_seed == "mixed").all()


def test_likelihood_verdict_on_reals_reads_the_raw_margin():
    """Six held-out reals with known margins (log-lik AD − CN): 40, 60, -1 for AD and 50, -5, 0
    for CN. The verdict (a tie is CN) gets 2 + 2 of 6 right; on the raw margin, 6 of the 9
    AD-CN pairs are ordered right (40 > -5, 40 > 0, 60 > 50, 60 > -5, 60 > 0, -1 > -5): AUC 6/9.
    Through expit, 40, 50 and 60 nats would all be 1.0: ties."""
    margin = {"AD": [40.0, 60.0, -1.0], "CN": [50.0, -5.0, 0.0]}
    rows = [
        {"condition": "real", "group": g, "loglik_AD": -100.0 + m, "loglik_CN": -100.0}
        for g, ms in margin.items()
        for m in ms
    ]
    out = likelihood_verdict_on_reals(pd.DataFrame(rows), n_boot=200, seed=0)
    assert out["accuracy"] == pytest.approx(4 / 6)
    ci = stats.binomtest(4, 6).proportion_ci(method="wilson")
    assert (out["accuracy_low"], out["accuracy_high"]) == pytest.approx((ci.low, ci.high))
    assert out["auc"] == pytest.approx(6 / 9)
    # its interval: the stratified bootstrap of the raw margin at threshold 0 (labels 1 = AD)
    boot = bootstrap_binary_metrics(
        [1, 1, 1, 0, 0, 0], [40.0, 60.0, -1.0, 50.0, -5.0, 0.0], n_boot=200, seed=0, threshold=0.0
    )
    assert (out["auc_low"], out["auc_high"]) == (boot["auc_low"], boot["auc_high"])
    assert boot["auc_low"] < 6 / 9 < boot["auc_high"]
    assert (out["n_AD"], out["n_CN"]) == (3, 3) and "a tie is CN" in out["rule"]


def test_outlier_counts_add_up_one_seeds_generated_and_real_outliers():
    """Generated sets' outliers (not the ceiling set's, not the outlier row's) and the held-out
    reals' with their total, of the seed asked for."""
    rows = [
        # seed, condition, group, kind, n_total, n_outliers
        (0, "brain", "AD", "generated", 6, 2),
        (0, "nobrain", "CN", "generated", 6, 1),
        (0, "ceiling_vae32", "AD", "ceiling", 10, 4),
        (0, "outlier", "", "outlier", 3, 3),
        (0, "real", "AD", "real", 10, 1),
        (0, "real", "CN", "real", 12, 2),
        (1, "brain", "AD", "generated", 6, 5),
        (1, "real", "AD", "real", 10, 1),
    ]
    columns = ["seed", "condition", "group", "kind", "n_total", "n_outliers"]
    by_seed = pd.DataFrame(rows, columns=columns)
    counts = outlier_counts(by_seed, 0)
    assert counts == {"seed": 0, "generated": 3, "real": 3, "real_total": 22}
    assert outlier_counts(by_seed, 1) == {"seed": 1, "generated": 5, "real": 1, "real_total": 10}
