"""Tests between sets and across replicate seeds: Fisher's exact test on pooled counts, the paired
t-test across seeds with the smallest difference the seeds can detect, and the seeds' sign
agreement."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

from brainmr.evaluate.stats.intervals import NAN, check_confidence, check_counts


def fisher_test(k1: int, n1: int, k2: int, n2: int) -> dict[str, float]:
    """Two-sided Fisher exact test of k1/n1 against k2/n2 (table [[k1, n1-k1], [k2, n2-k2]]);
    exact, so valid for small counts. ``odds_ratio`` is odds(1) / odds(2) (sample odds ratio).

    When both are 0/n or both n/n (nothing differs) the answer is odds_ratio 1 and p_value 1,
    where scipy leaves the odds ratio nan."""
    k1, n1 = check_counts(k1, n1)
    k2, n2 = check_counts(k2, n2)
    if (k1 == 0 and k2 == 0) or (k1 == n1 and k2 == n2):
        return {"odds_ratio": 1.0, "p_value": 1.0}
    result = sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="two-sided")
    return {"odds_ratio": float(result.statistic), "p_value": float(result.pvalue)}


def detectable_noncentrality(df: int, alpha: float, power: float) -> float:
    """Noncentrality at which a two-sided one-sample t test (df, alpha) has the given power."""
    crit = float(sps.t.ppf(1 - alpha / 2, df))

    def gap(ncp: float) -> float:
        # scipy's nct can return nan far in the lower tail, where the probability is ~0.
        wrong_side = float(np.nan_to_num(sps.nct.cdf(-crit, df, ncp)))
        return float(sps.nct.sf(crit, df, ncp)) + wrong_side - power

    high = 2.0 * crit + 4.0
    while gap(high) < 0:
        high *= 2
    return float(brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-12))


NO_SPREAD = "no spread between seeds"


def paired_seed_test(
    a: Any, b: Any, confidence: float = 0.95, power: float = 0.8
) -> dict[str, Any]:
    """Paired t test across replicate seeds of b against a (per-seed values aligned by seed;
    pairs with a non-finite side are dropped).

    Returns difference (mean of b - a), sd of the per-seed differences (ddof 1), low/high
    (Student-t interval of the mean difference), p_value (two-sided), n (seeds) and detectable:
    the smallest |mean difference| that n seeds detect with ``power`` at alpha = 1 - confidence
    at the observed sd (exact, from the noncentral t). n < 2: all but difference and n nan.
    No spread between the seeds (sd 0 up to rounding, e.g. both conditions at 0% in every seed):
    interval, p_value and detectable are nan and ``note`` says NO_SPREAD; a zero sd is an
    estimate from n values, not certainty, and a t test cannot speak from it (a binomial floor
    would need the images' count; callers that have it can add it). ``note`` is "" otherwise.

    Why not a binomial GLMM or beta-binomial: with 3 seeds a between-seed variance is barely
    estimable, while the paired t on per-seed fractions needs none and pairs the conditions by
    seed (shared seed and CNN judge)."""
    confidence = check_confidence(confidence)
    if not 1 - confidence < power < 1:
        raise ValueError(f"power must be in (1 - confidence, 1), got {power}")
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired_seed_test: {x.size} and {y.size} values are not aligned")
    d = (y - x)[np.isfinite(x) & np.isfinite(y)]
    n = int(d.size)
    out: dict[str, Any] = dict.fromkeys(("difference", "sd", "low", "high", "p_value"), NAN)
    out |= {"detectable": NAN, "n": n, "note": ""}
    if n == 0:
        return out
    mean = float(d.mean())
    out["difference"] = mean
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    alpha = 1 - confidence
    if sd <= 1e-12 * max(1.0, abs(mean)):  # constant differences (up to rounding)
        return out | {"sd": 0.0, "note": NO_SPREAD}
    sem = sd / math.sqrt(n)
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sem
    out |= {"sd": sd, "low": mean - half, "high": mean + half}
    out["p_value"] = float(sps.ttest_1samp(d, 0.0).pvalue)
    out["detectable"] = detectable_noncentrality(n - 1, alpha, power) * sem
    return out


def sign_agreement(differences: Any) -> str:
    """Whether per-replicate differences agree in sign: "all +", "all -", "mixed" (including
    any exact 0), or "n/a" when there is no finite difference."""
    d = np.asarray(differences, dtype=float).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        return "n/a"
    if np.all(d > 0):
        return "all +"
    if np.all(d < 0):
        return "all -"
    return "mixed"
