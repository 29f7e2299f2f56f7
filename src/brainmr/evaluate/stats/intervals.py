"""Intervals on proportions, means and correlations, a robust low threshold and size-matched
set metrics: pure functions, so a Table 1 number always comes with the uncertainty needed to
read it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

NAN = math.nan


def check_counts(k: int, n: int) -> tuple[int, int]:
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return k, n


def check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def _binom_ci(k: int, n: int, confidence: float, method: str) -> tuple[float, float]:
    k, n = check_counts(k, n)
    confidence = check_confidence(confidence)
    if n == 0:
        return NAN, NAN
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method=method)
    # Exactly 0 at k == 0 and 1 at k == n, whatever the rounding.
    low = 0.0 if k == 0 else max(0.0, float(ci.low))
    high = 1.0 if k == n else min(1.0, float(ci.high))
    return low, high


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (scipy's binomtest): well behaved near 0 and 1
    and for small n, unlike the Wald interval. n == 0 gives (nan, nan)."""
    return _binom_ci(k, n, confidence, "wilson")


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (conservative) Clopper-Pearson interval for k/n (scipy's binomtest, method
    "exact"); n == 0 gives (nan, nan), k == 0 a lower bound of 0 and k == n an upper of 1."""
    return _binom_ci(k, n, confidence, "exact")


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for an accuracy of ``correct`` out of ``n``: Wilson, so a perfect score on few
    images still says how few (10/10 gives about (0.72, 1), not [1, 1] as a bootstrap would)."""
    return wilson_interval(correct, n, confidence)


def mean_interval(
    values: Any, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> dict[str, float]:
    """Mean, sd (ddof=1) and Student-t interval of replicate values (e.g. one per seed).

    Non-finite values are dropped and ``n`` counts the rest; with n == 1 sd/low/high are nan
    (one replicate says nothing about spread), with n == 0 everything but n is nan. ``bounds``:
    the parameter's range (a proportion: (0, 1)); the interval is clipped to it, which never
    lowers its coverage since the true value lies inside."""
    confidence = check_confidence(confidence)
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    out = {"mean": NAN, "sd": NAN, "low": NAN, "high": NAN, "n": n}
    if n == 0:
        return out
    mean = float(x.mean())
    out["mean"] = mean
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return out | {"sd": sd, "low": low, "high": high}


PROPORTION = (0.0, 1.0)  # the bounds of a fraction or a probability


def correlation_interval(values: Any, confidence: float = 0.95) -> dict[str, float]:
    """Replicate correlations (one per seed) averaged in Fisher's z = atanh(r), with the
    Student-t interval of the z values back-transformed: it stays inside [-1, 1] and is not
    pulled by the skew of r near its bounds. Keys as mean_interval's (sd on the z scale)."""
    r = np.asarray(values, dtype=float).ravel()
    r = r[np.isfinite(r)]
    z = mean_interval(np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12)), confidence)
    return z | {key: float(np.tanh(z[key])) for key in ("mean", "low", "high")}


def seed_fraction_summary(k: Any, n: Any, confidence: float = 0.95) -> dict[str, float]:
    """Per-seed counts k_i / n_i: the mean of the per-seed fractions with its Student-t interval
    (mean_interval's keys; the seed is the unit, since a seed's images share one model), and the
    pooled sum(k) / sum(n) with a Wilson interval (pooled, pooled_low, pooled_high, pooled_k,
    pooled_n), which treats images as independent and is only a secondary figure. Seeds with
    n_i == 0 have no fraction."""
    k = np.asarray(k, dtype=int).ravel()
    n = np.asarray(n, dtype=int).ravel()
    if k.shape != n.shape:
        raise ValueError(f"seed_fraction_summary: {k.size} counts for {n.size} totals")
    for ki, ni in zip(k, n, strict=True):
        check_counts(ki, ni)
    fractions = np.divide(k, n, out=np.full(k.shape, NAN), where=n > 0)
    out: dict[str, float] = dict(mean_interval(fractions, confidence, bounds=PROPORTION))
    pooled_k, pooled_n = int(k.sum()), int(n.sum())
    out |= {"pooled": pooled_k / pooled_n if pooled_n else NAN, "pooled_k": pooled_k}
    out["pooled_low"], out["pooled_high"] = wilson_interval(pooled_k, pooled_n, confidence)
    return out | {"pooled_n": pooled_n}


def robust_low_threshold(values: Any, k: float) -> float:
    """median - k * 1.4826 * MAD of the finite values: a low cut-off that a few extreme values
    cannot drag (for normal data, k = 3 flags about 0.13%)."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("robust_low_threshold needs at least one finite value, got none")
    mad = float(sps.median_abs_deviation(x, scale="normal"))
    return float(np.median(x)) - k * mad


def _take(x: Any, index: np.ndarray) -> Any:
    return x.iloc[index] if hasattr(x, "iloc") else np.asarray(x)[index]


def matched_size(
    fn: Callable[[Any, Any], dict[str, float]],
    reference: Any,
    candidate: Any,
    n_draws: int,
    seed: int,
) -> dict[str, float]:
    """Set metrics at matched size: metrics such as precision, recall or KID depend on how many
    samples each set has, so the larger set is subsampled (without replacement) to the smaller
    one's size ``n_draws`` times and ``fn(reference_sub, candidate_sub)`` is averaged.

    Returns the mean of each key, ``<key>_sd`` (across draws, ddof=1; 0 for one draw or equal
    sizes, where fn runs once) and ``n_matched`` (the common size)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    n_ref, n_cand = len(reference), len(candidate)
    n = min(n_ref, n_cand)
    if n_ref == n_cand:
        results = [fn(reference, candidate)]
    else:
        rng = np.random.default_rng(seed)
        results = []
        for _ in range(n_draws):
            if n_ref > n_cand:
                index = np.sort(rng.choice(n_ref, size=n, replace=False))
                results.append(fn(_take(reference, index), candidate))
            else:
                index = np.sort(rng.choice(n_cand, size=n, replace=False))
                results.append(fn(reference, _take(candidate, index)))
    keys = list(results[0])
    if any(list(r) != keys for r in results):
        raise ValueError("matched_size: fn returned different keys on different draws")
    out: dict[str, float] = {}
    for key in keys:
        draws = np.array([r[key] for r in results], dtype=float)
        out[key] = float(draws.mean())
        out[f"{key}_sd"] = float(draws.std(ddof=1)) if draws.size > 1 else 0.0
    out["n_matched"] = n
    return out
