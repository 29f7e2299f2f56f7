"""Statistics primitives for reporting: intervals on proportions and means, exact tests, paired
tests across replicate seeds, bootstrap intervals for a binary classifier, a robust threshold
and size-matched set metrics. Pure functions (arrays or tables in, numbers or tables out), so a
Table 1 number always comes with the uncertainty needed to read it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.optimize import brentq

from brainmr import LABELS

NAN = math.nan
AD, CN = LABELS.index("AD"), LABELS.index("CN")  # the label coding of brainmr.LABELS
THRESHOLD = 0.5  # the one decision threshold: P(AD) >= THRESHOLD -> AD (P(M) likewise -> M)


def ad_labels(groups: Any) -> np.ndarray:
    """The 0/1 labels of group names (brainmr.LABELS: AD -> 1, any other name -> 0)."""
    return np.where(np.asarray(groups).astype(str) == "AD", AD, CN)


def _check_counts(k: int, n: int) -> tuple[int, int]:
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def _binom_ci(k: int, n: int, confidence: float, method: str) -> tuple[float, float]:
    k, n = _check_counts(k, n)
    confidence = _check_confidence(confidence)
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
    confidence = _check_confidence(confidence)
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


def fisher_test(k1: int, n1: int, k2: int, n2: int) -> dict[str, float]:
    """Two-sided Fisher exact test of k1/n1 against k2/n2 (table [[k1, n1-k1], [k2, n2-k2]]);
    exact, so valid for small counts. ``odds_ratio`` is odds(1) / odds(2) (sample odds ratio).

    When both are 0/n or both n/n (nothing differs) the answer is odds_ratio 1 and p_value 1,
    where scipy leaves the odds ratio nan."""
    k1, n1 = _check_counts(k1, n1)
    k2, n2 = _check_counts(k2, n2)
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
    confidence = _check_confidence(confidence)
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
        _check_counts(ki, ni)
    fractions = np.divide(k, n, out=np.full(k.shape, NAN), where=n > 0)
    out: dict[str, float] = dict(mean_interval(fractions, confidence, bounds=PROPORTION))
    pooled_k, pooled_n = int(k.sum()), int(n.sum())
    out |= {"pooled": pooled_k / pooled_n if pooled_n else NAN, "pooled_k": pooled_k}
    out["pooled_low"], out["pooled_high"] = wilson_interval(pooled_k, pooled_n, confidence)
    return out | {"pooled_n": pooled_n}


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


def _binary_inputs(
    labels: Any, prob: Any, probabilities: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and probabilities ({p.size}) differ in length")
    if not np.isin(y, (CN, AD)).all():
        raise ValueError("labels must be 0 (CN) or 1 (AD)")
    if not np.isfinite(p).all():
        raise ValueError("scores must be finite")
    if probabilities and p.size > 0 and (p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    return y.astype(int), p


def brier_score(labels: Any, prob: Any) -> float:
    """Mean squared difference between P(AD) and the 0/1 label (0 perfect, 0.25 for a constant
    0.5); nan for no samples."""
    from sklearn.metrics import brier_score_loss

    y, p = _binary_inputs(labels, prob)
    return float(brier_score_loss(y, p, pos_label=AD)) if y.size else NAN


def _auc_rows(prob: np.ndarray, n_pos: int) -> np.ndarray:
    """ROC AUC of each row of ``prob`` whose first ``n_pos`` columns are the positives (the
    Mann-Whitney statistic from mid-ranks, so ties count one half)."""
    n_neg = prob.shape[1] - n_pos
    ranks = sps.rankdata(prob, axis=1)
    rank_sum = ranks[:, :n_pos].sum(axis=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_binary_metrics(
    labels: Any,
    prob: Any,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    threshold: float = THRESHOLD,
) -> dict[str, float]:
    """Accuracy (AD where the score >= ``threshold``) with a Wilson interval, ROC AUC with a
    percentile bootstrap interval, and the Brier score, of a score against 0/1 labels (1 = AD).
    The score is P(AD) at the default threshold; any other threshold takes a raw score (e.g. a
    log-likelihood margin), whose Brier score is nan.

    Resampling is stratified (with replacement within each class) so every resample keeps the
    class sizes and AUC stays defined; auc and its interval are nan when a class is absent. The
    accuracy's interval is Wilson's, which does not collapse to [1, 1] at perfect accuracy as a
    bootstrap does."""
    is_prob = threshold == THRESHOLD
    y, p = _binary_inputs(labels, prob, probabilities=is_prob)
    confidence = _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    keys = ("accuracy", "accuracy_low", "accuracy_high", "auc", "auc_low", "auc_high")
    out = dict.fromkeys(keys, NAN) | {"brier": brier_score(y, p) if is_prob else NAN}
    if y.size == 0:
        return out
    pos, neg = np.flatnonzero(y == AD), np.flatnonzero(y == CN)
    correct = ((p >= threshold).astype(int) == y).astype(float)
    out["accuracy"] = float(correct.mean())
    out["accuracy_low"], out["accuracy_high"] = accuracy_interval(
        int(correct.sum()), y.size, confidence
    )
    both = pos.size > 0 and neg.size > 0
    if both:
        out["auc"] = float(_auc_rows(np.concatenate([p[pos], p[neg]])[None, :], pos.size)[0])

    rng = np.random.default_rng(seed)
    auc = np.empty(n_boot)
    chunk = max(1, 2_000_000 // y.size)  # bound the (resamples x samples) arrays
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = np.concatenate(
            [rng.choice(part, size=(stop - start, part.size)) for part in (pos, neg) if part.size],
            axis=1,
        )  # positives first, then negatives
        if both:
            auc[start:stop] = _auc_rows(p[idx], pos.size)
    tail = (1 - confidence) / 2
    if both:
        out["auc_low"], out["auc_high"] = (float(q) for q in np.quantile(auc, [tail, 1 - tail]))
    return out


def reliability_table(labels: Any, prob: Any, n_bins: int = 5) -> pd.DataFrame:
    """Calibration table: per equal-width P(AD) bin on [0, 1] (last bin closed), the number of
    samples, their mean P(AD) and the observed fraction of AD. Empty bins are kept (n = 0, NaN)
    so tables from different runs line up."""
    y, p = _binary_inputs(labels, prob)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], p, side="right")
    rows = []
    for b in range(n_bins):
        inside = which == b
        n = int(inside.sum())
        rows.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "n": n,
                "mean_prob": float(p[inside].mean()) if n else NAN,
                "fraction_AD": float(y[inside].mean()) if n else NAN,
            }
        )
    return pd.DataFrame(rows, columns=["bin_low", "bin_high", "n", "mean_prob", "fraction_AD"])


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
