"""Statistics primitives (brainmr.evaluate.stats), checked against known answers and independent
computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from toy_evaluation import Z95

from brainmr.evaluate.stats.binary import bootstrap_binary_metrics, brier_score, reliability_table
from brainmr.evaluate.stats.intervals import (
    PROPORTION,
    accuracy_interval,
    clopper_pearson_interval,
    correlation_interval,
    matched_size,
    mean_interval,
    robust_low_threshold,
    seed_fraction_summary,
    wilson_interval,
)
from brainmr.evaluate.stats.ratio import fieller_ratio
from brainmr.evaluate.stats.tests import NO_SPREAD, fisher_test, paired_seed_test, sign_agreement

# --- intervals on proportions -------------------------------------------------------------


# Newcombe (1998), Stat Med 17:857, Table I, method 3 (Wilson score, no continuity correction).
NEWCOMBE_WILSON = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE_WILSON)
def test_wilson_matches_newcombe_table(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(low, abs=5e-5)
    assert got[1] == pytest.approx(high, abs=5e-5)


def test_wilson_known_value_and_edges() -> None:
    # 3/100: the Wilson interval is about (0.0103, 0.0845), not the Wald (-0.003, 0.063).
    low, high = wilson_interval(3, 100)
    assert low == pytest.approx(0.01026, abs=1e-4)
    assert high == pytest.approx(0.08450, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    low99, high99 = wilson_interval(3, 100, confidence=0.99)
    assert low99 < low and high99 > high
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


@pytest.mark.parametrize(("k", "n"), [(3, 100), (7, 99), (5, 10), (1, 4), (0, 12), (12, 12)])
def test_clopper_pearson_matches_beta_quantiles(k: int, n: int) -> None:
    # The exact interval's bounds are beta quantiles (Clopper & Pearson 1934).
    low, high = clopper_pearson_interval(k, n)
    assert low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0, abs=1e-10)
    assert high == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0, abs=1e-10)


def test_clopper_pearson_zero_of_twenty() -> None:
    # With k = 0 the upper bound solves (1 - p)^n = alpha / 2.
    assert clopper_pearson_interval(0, 20) == pytest.approx((0.0, 1 - 0.025 ** (1 / 20)), abs=1e-12)


def test_accuracy_interval_is_wilson_not_degenerate() -> None:
    low, high = accuracy_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=5e-5) and high == 1.0  # 10 / (10 + z^2)
    assert low == pytest.approx(10 / (10 + Z95**2), abs=1e-12)
    assert accuracy_interval(81, 263) == pytest.approx(wilson_interval(81, 263))


def test_clopper_pearson_edges_and_is_wider_than_wilson() -> None:
    assert clopper_pearson_interval(0, 10)[0] == 0.0
    assert clopper_pearson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in clopper_pearson_interval(0, 0))
    cp, wi = clopper_pearson_interval(3, 100), wilson_interval(3, 100)
    assert cp[1] - cp[0] > wi[1] - wi[0]  # exact interval is conservative


# --- means across seeds, exact test, signs ------------------------------------------------


def test_mean_interval_matches_scipy_t_interval() -> None:
    values = np.array([0.61, 0.70, 0.66, 0.58, 0.73])
    out = mean_interval(values)
    sem = values.std(ddof=1) / math.sqrt(len(values))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sem)
    assert out["n"] == 5
    assert out["mean"] == pytest.approx(0.656)
    assert out["sd"] == pytest.approx(np.std(values, ddof=1))
    assert out["low"] == pytest.approx(low)
    assert out["high"] == pytest.approx(high)


def test_mean_interval_drops_nan_and_handles_one_value() -> None:
    with_nan = mean_interval([1.0, np.nan, 3.0])
    assert with_nan["n"] == 2 and with_nan["mean"] == pytest.approx(2.0)
    low, high = stats.t.interval(0.9, 1, loc=2.0, scale=np.std([1, 3], ddof=1) / math.sqrt(2))
    assert mean_interval([1.0, np.nan, 3.0], confidence=0.9)["low"] == pytest.approx(low)
    assert mean_interval([1.0, np.nan, 3.0], confidence=0.9)["high"] == pytest.approx(high)
    one = mean_interval([0.4])
    assert one["n"] == 1 and one["mean"] == 0.4
    assert all(math.isnan(one[k]) for k in ("sd", "low", "high"))
    none = mean_interval([np.nan])
    assert none["n"] == 0 and math.isnan(none["mean"])


def test_fisher_test_paper_example() -> None:
    out = fisher_test(3, 100, 7, 99)
    expected = stats.fisher_exact([[3, 97], [7, 92]])
    assert out["p_value"] == pytest.approx(expected.pvalue)
    assert out["odds_ratio"] == pytest.approx(expected.statistic)
    assert 0.15 < out["p_value"] < 0.3  # 3% vs 7% is not a significant difference
    assert out["odds_ratio"] == pytest.approx((3 * 92) / (97 * 7))
    assert fisher_test(0, 50, 25, 50)["p_value"] < 1e-6


def test_fisher_test_defined_when_nothing_differs() -> None:
    for k1, n1, k2, n2 in [(0, 10, 0, 20), (10, 10, 20, 20), (0, 0, 0, 5)]:
        assert fisher_test(k1, n1, k2, n2) == {"odds_ratio": 1.0, "p_value": 1.0}
    assert fisher_test(9, 10, 1, 10)["odds_ratio"] > 1  # odds(1) / odds(2)


# --- paired test across seeds -------------------------------------------------------------


def test_paired_seed_test_known_answer() -> None:
    out = paired_seed_test([0.0, 0.0, 0.0], [0.1, 0.2, 0.3])
    assert out["n"] == 3
    assert out["difference"] == pytest.approx(0.2) and out["sd"] == pytest.approx(0.1)
    t = 0.2 / (0.1 / math.sqrt(3))  # = 2 sqrt 3 on 2 df
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(t, 2))
    assert out["p_value"] == pytest.approx(1 - t / math.sqrt(t * t + 2))  # t on 2 df, closed
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # t_{0.975, 2} = 4.3027
    assert (out["low"], out["high"]) == pytest.approx((0.2 - half, 0.2 + half))
    # the same differences from other baselines: only b - a matters
    again = paired_seed_test([0.5, 0.3, 0.1], [0.6, 0.5, 0.4])
    assert again["p_value"] == pytest.approx(out["p_value"])


def test_paired_seed_test_detectable_reaches_the_normal_limit() -> None:
    """With many seeds the t test is the z test: the detectable difference is (z_0.975 +
    z_0.8) sd / sqrt(n) = 2.8016 sd / sqrt(n), a closed form independent of the noncentral t."""
    n = 4000
    z = np.resize([1.0, -1.0], n)
    out = paired_seed_test(np.zeros(n), 0.01 + 0.1 * (z - z.mean()) / z.std(ddof=1))
    assert out["detectable"] * math.sqrt(n) / 0.1 == pytest.approx(1.959964 + 0.841621, abs=3e-3)


@pytest.mark.parametrize("n", [3, 5])
def test_paired_seed_test_detectable_has_its_power_in_simulation(n: int) -> None:
    """Data simulated with a true difference equal to the detectable one (at the true sd) are
    found significant 80% of the time: a check by counting, not by the same formula."""
    sd = 0.1
    detectable = paired_seed_test(np.zeros(n), sd * np.resize([1.0, -1.0, 0.0], n) * 1.0)
    sd_seen = detectable["sd"]
    rng = np.random.default_rng(n)
    effect = detectable["detectable"] * sd / sd_seen
    draws = rng.normal(effect, sd, size=(20000, n))
    p = stats.ttest_1samp(draws, 0.0, axis=1).pvalue
    power = float(np.mean(p < 0.05))
    assert power == pytest.approx(0.8, abs=0.015)  # Monte-Carlo sd ~0.003
    strict = paired_seed_test(np.zeros(n), sd * np.resize([1.0, -1.0, 0.0], n), 0.99, 0.9)
    assert strict["detectable"] > detectable["detectable"]


def test_paired_seed_test_more_seeds_detect_less() -> None:
    found = []
    for n in (2, 3, 4, 6, 10):
        z = np.resize([1.0, -1.0, 0.5], n)
        d = 0.2 + 0.1 * (z - z.mean()) / z.std(ddof=1)  # sd exactly 0.1 for every n
        out = paired_seed_test(np.zeros(n), d)
        assert out["sd"] == pytest.approx(0.1)
        found.append(out["detectable"])
    assert all(a > b for a, b in zip(found, found[1:], strict=False))
    assert found[1] > 0.3  # 3 seeds at sd 0.1: only differences above ~0.33 are seen


def test_paired_seed_test_edge_cases() -> None:
    one = paired_seed_test([0.1, np.nan], [0.4, 0.5])  # the nan pair is dropped
    assert one["n"] == 1 and one["difference"] == pytest.approx(0.3)
    assert all(math.isnan(one[k]) for k in ("sd", "low", "high", "p_value", "detectable"))
    assert one["note"] == ""
    # No spread between seeds is not certainty: both at 0% in every seed, or the same shift in
    # every seed, give no p, no interval and no detectable difference, and say why.
    for a, b in [([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ([0.1, 0.2, 0.3], [0.11, 0.21, 0.31])]:
        flat = paired_seed_test(a, b)
        assert flat["note"] == NO_SPREAD and flat["sd"] == 0.0
        assert all(math.isnan(flat[k]) for k in ("low", "high", "p_value", "detectable"))
        assert flat["difference"] == pytest.approx(np.mean(b) - np.mean(a))
    spread = paired_seed_test([0.1, 0.2, 0.3], [0.11, 0.22, 0.31])
    assert spread["note"] == "" and spread["p_value"] < 1
    assert math.isnan(paired_seed_test([], [])["difference"])
    with pytest.raises(ValueError):
        paired_seed_test([0.1, 0.2], [0.1])


def test_seed_fraction_summary_known_numbers() -> None:
    out = seed_fraction_summary([60, 70, 55], [100, 100, 100])
    assert out["n"] == 3 and out["mean"] == pytest.approx(0.61666667)
    assert out["sd"] == pytest.approx(np.std([0.6, 0.7, 0.55], ddof=1))
    half = stats.t.ppf(0.975, 2) * out["sd"] / math.sqrt(3)
    assert (out["low"], out["high"]) == pytest.approx((out["mean"] - half, out["mean"] + half))
    assert out["pooled_k"] == 185 and out["pooled_n"] == 300
    assert out["pooled"] == pytest.approx(185 / 300)
    assert (out["pooled_low"], out["pooled_high"]) == pytest.approx(wilson_interval(185, 300))
    # unequal sizes: the seed mean weighs seeds equally, the pooled fraction weighs images
    uneven = seed_fraction_summary([1, 40, 0], [10, 50, 0])
    assert uneven["n"] == 2 and uneven["mean"] == pytest.approx((0.1 + 0.8) / 2)
    assert uneven["pooled"] == pytest.approx(41 / 60)


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        ([0.1, 2.0, 0.3], "all +"),
        ([-0.1, -2.0], "all -"),
        ([0.1, -0.2], "mixed"),
        ([0.1, 0.0], "mixed"),
        ([np.nan, 0.5], "all +"),
        ([], "n/a"),
        ([np.nan], "n/a"),
    ],
)
def test_sign_agreement(differences: list[float], expected: str) -> None:
    assert sign_agreement(differences) == expected


# --- classifier bootstrap, Brier, reliability ---------------------------------------------


def test_bootstrap_perfect_separation() -> None:
    labels = np.array([0] * 15 + [1] * 10)
    prob = np.r_[np.linspace(0.0, 0.4, 15), np.linspace(0.6, 1.0, 10)]
    out = bootstrap_binary_metrics(labels, prob, n_boot=300, seed=1)
    for key in ("accuracy", "accuracy_high", "auc", "auc_low", "auc_high"):
        assert out[key] == pytest.approx(1.0), key
    # 25 of 25 correct: Wilson's lower bound, not the bootstrap's degenerate 1
    assert out["accuracy_low"] == pytest.approx(0.8668, abs=1e-4)
    assert out["brier"] == pytest.approx(np.mean((prob - labels) ** 2))


def test_bootstrap_on_a_raw_margin_keeps_large_margins_ordered() -> None:
    """A log-likelihood margin of 40 to 60 nats: a probability transform (expit) maps all of
    them to 1.0 and turns the order into ties; the raw margin at threshold 0 keeps it."""
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    margin = np.array([60.0, 45.0, -3.0, 50.0, 40.0, -2.0, -8.0, 55.0])
    out = bootstrap_binary_metrics(labels, margin, n_boot=200, threshold=0.0)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, margin))
    assert out["auc"] == pytest.approx(0.75)  # 12 of the 16 AD-CN pairs ordered right
    assert out["accuracy"] == pytest.approx(5 / 8) and math.isnan(out["brier"])
    saturated = bootstrap_binary_metrics(labels, 1 / (1 + np.exp(-margin)), n_boot=200)
    assert saturated["auc"] < out["auc"]  # the ties expit made


def test_bootstrap_random_labels_interval_contains_chance() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    prob = rng.uniform(size=200)
    out = bootstrap_binary_metrics(labels, prob, n_boot=2000, seed=0)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, prob))
    assert out["accuracy"] == pytest.approx(np.mean((prob >= 0.5) == labels))
    assert out["auc_low"] < 0.5 < out["auc_high"]
    assert out["accuracy_low"] < 0.5 < out["accuracy_high"]
    # The bootstrap interval is about +-1.96 Hanley-McNeil (1982) standard errors (+-0.08 here)
    n_pos, n_neg, auc = labels.sum(), len(labels) - labels.sum(), out["auc"]
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt(
        (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2))
        / (n_pos * n_neg)
    )
    assert out["auc_high"] - out["auc_low"] == pytest.approx(2 * Z95 * se, rel=0.1)
    again = bootstrap_binary_metrics(labels, prob, n_boot=2000, seed=0)
    assert again == out  # reproducible by seed


def test_bootstrap_auc_handles_ties_like_sklearn() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    prob = np.array([0.2, 0.5, 0.5, 0.8, 0.5, 0.2, 0.9, 0.1])
    out = bootstrap_binary_metrics(labels, prob, n_boot=50)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, prob))


def test_bootstrap_one_class_and_constant_predictions() -> None:
    out = bootstrap_binary_metrics(np.ones(6, int), np.full(6, 0.7), n_boot=50)
    assert out["accuracy"] == 1.0 and math.isnan(out["auc"]) and math.isnan(out["auc_low"])
    labels = np.array([0, 1, 1, 0, 1])
    assert brier_score(labels, np.full(5, 0.5)) == pytest.approx(0.25)
    assert bootstrap_binary_metrics(labels, np.full(5, 0.5), n_boot=50)["brier"] == 0.25
    assert bootstrap_binary_metrics(labels, np.full(5, 0.5), n_boot=50)["auc"] == 0.5
    with pytest.raises(ValueError):
        bootstrap_binary_metrics([0, 2], [0.1, 0.2])


def test_reliability_table_counts_and_bins() -> None:
    rng = np.random.default_rng(0)
    prob = np.r_[rng.uniform(size=97), 0.0, 0.2, 1.0]
    labels = rng.integers(0, 2, prob.size)
    table = reliability_table(labels, prob, n_bins=5)
    assert list(table.columns) == ["bin_low", "bin_high", "n", "mean_prob", "fraction_AD"]
    assert table["n"].sum() == prob.size
    assert table["bin_low"].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert table["bin_high"].iloc[-1] == 1.0
    first = prob[prob < 0.2]
    assert table["n"].iloc[0] == first.size
    assert table["mean_prob"].iloc[0] == pytest.approx(first.mean())
    assert table["fraction_AD"].iloc[0] == pytest.approx(labels[prob < 0.2].mean())


def test_reliability_table_keeps_empty_bins() -> None:
    table = reliability_table([0, 1, 1], [0.1, 0.95, 0.9], n_bins=4)
    assert table["n"].tolist() == [1, 0, 0, 2]
    assert table["n"].sum() == 3
    assert math.isnan(table["mean_prob"].iloc[1]) and math.isnan(table["fraction_AD"].iloc[2])
    assert table["fraction_AD"].iloc[3] == 1.0


# --- robust threshold ---------------------------------------------------------------------


def test_robust_low_threshold_known_array() -> None:
    # median 3, MAD = median(|x - 3|) = 1, so 3 - 2 * 1.4826 * 1 (the 100 does not matter)
    # (1.4826 is 1 / Phi^-1(0.75) rounded)
    threshold = robust_low_threshold([1, 2, 3, 4, 100], k=2)
    assert threshold == pytest.approx(3 - 2 / stats.norm.ppf(0.75), abs=1e-12)
    assert threshold == pytest.approx(3 - 2 * 1.4826, abs=1e-4)
    assert robust_low_threshold([1, 2, np.nan, 3, 4, 100], k=2) == pytest.approx(
        robust_low_threshold([1, 2, 3, 4, 100], k=2)
    )
    with pytest.raises(ValueError, match="finite"):
        robust_low_threshold([], k=3)


def test_robust_low_threshold_flags_normal_tail() -> None:
    rng = np.random.default_rng(0)
    threshold = robust_low_threshold(rng.normal(10, 2, 20_000), k=3)
    assert threshold == pytest.approx(10 - 3 * 2, abs=0.1)
    fresh = rng.normal(10, 2, 400_000)
    assert 0.0009 < np.mean(fresh < threshold) < 0.0019  # Phi(-3) = 0.00135


# --- size matching ------------------------------------------------------------------------


def test_matched_size_subsamples_the_larger_set() -> None:
    reference, candidate = np.arange(10.0)[:, None], np.arange(100.0, 104.0)[:, None]
    sizes: list[tuple[int, int]] = []

    def fn(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
        sizes.append((len(ref), len(cand)))
        assert len(np.unique(ref)) == len(ref)  # without replacement
        return {"ref_mean": float(ref.mean()), "cand_mean": float(cand.mean())}

    out = matched_size(fn, reference, candidate, n_draws=25, seed=3)
    assert sizes == [(4, 4)] * 25
    assert out["n_matched"] == 4
    assert out["cand_mean"] == pytest.approx(101.5) and out["cand_mean_sd"] == 0.0
    assert 2.0 < out["ref_mean"] < 7.0 and out["ref_mean_sd"] > 0
    assert matched_size(fn, reference, candidate, n_draws=25, seed=3) == out
    assert matched_size(fn, reference, candidate, n_draws=25, seed=4) != out
    swapped = matched_size(fn, candidate, reference, n_draws=5, seed=3)
    assert swapped["ref_mean"] == pytest.approx(101.5) and swapped["n_matched"] == 4


def test_matched_size_equal_sizes_calls_once() -> None:
    calls = []

    def fn(ref: pd.DataFrame, cand: pd.DataFrame) -> dict[str, float]:
        calls.append(1)
        return {"diff": float(cand["x"].mean() - ref["x"].mean())}

    frame = pd.DataFrame({"x": np.arange(6.0)})
    out = matched_size(fn, frame, frame + 1, n_draws=10, seed=0)
    assert calls == [1]
    assert out == {"diff": 1.0, "diff_sd": 0.0, "n_matched": 6}
    small = matched_size(fn, frame, frame.iloc[:2] + 1, n_draws=4, seed=0)  # DataFrame rows
    assert small["n_matched"] == 2 and len(calls) == 5


# --- bounded intervals, correlations, ratios --------------------------------------------------


def test_bounded_intervals_stay_in_range() -> None:
    probs = [0.30, 0.95, 0.99]  # t interval [-0.19, 1.68] unbounded
    free, bounded = mean_interval(probs), mean_interval(probs, bounds=PROPORTION)
    assert free["low"] < 0 and free["high"] > 1
    assert (bounded["low"], bounded["high"]) == (0.0, 1.0)
    assert bounded["mean"] == free["mean"] and bounded["sd"] == free["sd"]
    inside = mean_interval([0.4, 0.5, 0.6], bounds=PROPORTION)
    assert (inside["low"], inside["high"]) == pytest.approx(
        (mean_interval([0.4, 0.5, 0.6])["low"], mean_interval([0.4, 0.5, 0.6])["high"])
    )


def test_correlations_average_in_fisher_z() -> None:
    r = [0.90, 0.95, 0.99]  # the plain t interval [0.835, 1.059] leaves [-1, 1]
    out = correlation_interval(r)
    z = np.arctanh(r)
    half = stats.t.ppf(0.975, 2) * z.std(ddof=1) / math.sqrt(3)
    assert out["mean"] == pytest.approx(np.tanh(z.mean()))
    assert (out["low"], out["high"]) == pytest.approx(
        (np.tanh(z.mean() - half), np.tanh(z.mean() + half))
    )
    assert -1 < out["low"] < out["mean"] < out["high"] < 1
    assert mean_interval(r)["high"] > 1


def test_fieller_ratio_known_answers() -> None:
    # exact denominator (variance 0): the interval is the numerator's t interval over it
    out = fieller_ratio(4.0, 1.0, 2, 8.0, 0.0, 50)
    half = stats.t.ppf(0.975, 2) * 1.0
    assert out["established"] and out["ratio"] == pytest.approx(0.5)
    assert (out["low"], out["high"]) == pytest.approx(((4 - half) / 8, (4 + half) / 8))
    # an uncertain denominator widens it, asymmetrically (a ratio is skewed)
    # (many df on both sides, so only the denominator's variance changes)
    exact = fieller_ratio(4.0, 1.0, 10**6, 8.0, 0.0, 10**6)
    wide = fieller_ratio(4.0, 1.0, 10**6, 8.0, 1.0, 10**6)
    assert wide["low"] < exact["low"] and wide["high"] > exact["high"]
    assert wide["high"] - 0.5 > 0.5 - wide["low"]
    # a denominator indistinguishable from 0 gives no interval at all (the 667% case)
    assert not fieller_ratio(40.0, 10.0, 2, 6.0, 170.0**2, 200)["established"]
    assert math.isnan(fieller_ratio(1.0, 1.0, 2, 0.0, 1.0, 50)["ratio"])


@pytest.mark.parametrize("n_ad,n_cn", [(4, 5), (60, 80)])
def test_fieller_ratio_covers_at_demo_and_paper_sizes(n_ad: int, n_cn: int) -> None:
    """A true share of 0.5 of a real difference of 2 sd: the interval holds it in ~95% of the
    simulated studies where the real difference is established (3 seeds, seed sd 0.3)."""
    rng = np.random.default_rng(n_ad)
    hits, trials = 0, 0
    for _ in range(2000):
        ad, cn = rng.normal(2.0, 1.0, n_ad), rng.normal(0.0, 1.0, n_cn)
        var_r = ad.var(ddof=1) / n_ad + cn.var(ddof=1) / n_cn
        df_r = var_r**2 / (
            (ad.var(ddof=1) / n_ad) ** 2 / (n_ad - 1) + (cn.var(ddof=1) / n_cn) ** 2 / (n_cn - 1)
        )
        seeds = rng.normal(1.0, 0.3, 3)
        out = fieller_ratio(
            seeds.mean(), seeds.var(ddof=1) / 3, 2, ad.mean() - cn.mean(), var_r, df_r
        )
        if out["established"]:
            trials += 1
            hits += out["low"] <= 0.5 <= out["high"]
    assert trials > 500
    # not below nominal by more than 2 points; Cochran-Cox errs high where the real difference
    # dominates the variance (98% at the demo's 4 + 5 subjects; bench/calibration.py)
    assert 0.93 <= hits / trials <= 0.99
