"""Statistics primitives for reporting: intervals on proportions and means, exact tests,
bootstrap intervals for a binary classifier, train/test balance checks, a robust threshold and
size-matched set metrics. Pure functions (arrays or tables in, numbers or tables out), so a
Table 1 number always comes with the uncertainty needed to read it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

NAN = math.nan
AD, CN = 1, 0  # label coding: 1 = AD
THRESHOLD = 0.5  # P(AD) >= THRESHOLD -> predicted AD (as in classifier.binary_metrics)


def _check_counts(k: int, n: int) -> tuple[int, int]:
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return k, n


def _check_confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n: well behaved near 0 and 1 and for small n,
    unlike the Wald interval. n == 0 gives (nan, nan)."""
    k, n = _check_counts(k, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return NAN, NAN
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds are exactly 0 at k == 0 and 1 at k == n; rounding would leave them just off.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (conservative) Clopper-Pearson interval for k/n from beta quantiles; n == 0 gives
    (nan, nan), k == 0 a lower bound of 0 and k == n an upper bound of 1."""
    k, n = _check_counts(k, n)
    confidence = _check_confidence(confidence)
    if n == 0:
        return NAN, NAN
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def mean_interval(values: Any, confidence: float = 0.95) -> dict[str, float]:
    """Mean, sd (ddof=1) and Student-t interval of replicate values (e.g. one per seed).

    Non-finite values are dropped and ``n`` counts the rest; with n == 1 sd/low/high are nan
    (one replicate says nothing about spread), with n == 0 everything but n is nan."""
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
    return out | {"sd": sd, "low": mean - half, "high": mean + half}


def fisher_test(k1: int, n1: int, k2: int, n2: int) -> dict[str, float]:
    """Two-sided Fisher exact test of k1/n1 against k2/n2 (table [[k1, n1-k1], [k2, n2-k2]]);
    exact, so valid for the small counts of a per-set misclassification table."""
    k1, n1 = _check_counts(k1, n1)
    k2, n2 = _check_counts(k2, n2)
    result = sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="two-sided")
    return {"odds_ratio": float(result.statistic), "p_value": float(result.pvalue)}


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


def _binary_inputs(labels: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    p = np.asarray(prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and probabilities ({p.size}) differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (CN) or 1 (AD)")
    if not np.isfinite(p).all() or (p.size > 0 and (p.min() < 0 or p.max() > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]")
    return y.astype(int), p


def brier_score(labels: Any, prob: Any) -> float:
    """Mean squared difference between P(AD) and the 0/1 label (0 perfect, 0.25 for a constant
    0.5); nan for no samples."""
    y, p = _binary_inputs(labels, prob)
    return float(np.mean((p - y) ** 2)) if y.size else NAN


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
) -> dict[str, float]:
    """Accuracy (threshold 0.5) and ROC AUC with percentile bootstrap intervals, and the Brier
    score, of P(AD) against 0/1 labels (1 = AD).

    Resampling is stratified (with replacement within each class) so every resample keeps the
    class sizes and AUC stays defined; auc and its interval are nan when a class is absent."""
    y, p = _binary_inputs(labels, prob)
    confidence = _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    keys = ("accuracy", "accuracy_low", "accuracy_high", "auc", "auc_low", "auc_high")
    out = dict.fromkeys(keys, NAN) | {"brier": brier_score(y, p)}
    if y.size == 0:
        return out
    pos, neg = np.flatnonzero(y == AD), np.flatnonzero(y == CN)
    correct = ((p >= THRESHOLD).astype(int) == y).astype(float)
    out["accuracy"] = float(correct.mean())
    both = pos.size > 0 and neg.size > 0
    if both:
        out["auc"] = float(_auc_rows(np.concatenate([p[pos], p[neg]])[None, :], pos.size)[0])

    rng = np.random.default_rng(seed)
    acc = np.empty(n_boot)
    auc = np.empty(n_boot)
    chunk = max(1, 2_000_000 // y.size)  # bound the (resamples x samples) arrays
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = np.concatenate(
            [rng.choice(part, size=(stop - start, part.size)) for part in (pos, neg) if part.size],
            axis=1,
        )  # positives first, then negatives
        acc[start:stop] = correct[idx].mean(axis=1)
        if both:
            auc[start:stop] = _auc_rows(p[idx], pos.size)
    tail = (1 - confidence) / 2
    out["accuracy_low"], out["accuracy_high"] = (
        float(q) for q in np.quantile(acc, [tail, 1 - tail])
    )
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


def _one_per_subject(frame: pd.DataFrame) -> pd.DataFrame:
    # Slices of one subject are not independent samples: count each subject once.
    return frame.drop_duplicates("subject") if "subject" in frame.columns else frame


def _age_check(train: pd.Series, test: pd.Series) -> dict[str, Any]:
    a = pd.to_numeric(train, errors="coerce").dropna().to_numpy(float)
    b = pd.to_numeric(test, errors="coerce").dropna().to_numpy(float)
    if a.size == 0 or b.size == 0:
        return {}
    p = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return {
        "train_summary": f"median {np.median(a):.1f} (n={a.size})",
        "test_summary": f"median {np.median(b):.1f} (n={b.size})",
        "test": "Mann-Whitney U",
        "p_value": p,
    }


def _counts_summary(values: pd.Series) -> str:
    counts = values.value_counts().sort_index()
    return ", ".join(f"{key} {int(n)}" for key, n in counts.items())


def _sex_check(train: pd.Series, test: pd.Series) -> dict[str, Any]:
    a = train.dropna().astype(str).str.strip()
    b = test.dropna().astype(str).str.strip()
    a, b = a[a != ""], b[b != ""]
    if a.empty or b.empty:
        return {}
    out = {"train_summary": _counts_summary(a), "test_summary": _counts_summary(b)}
    categories = sorted(set(a) | set(b))
    if len(categories) < 2:
        return out | {"test": "none (one category)", "p_value": 1.0}
    table = np.array([[np.sum(a == c) for c in categories], [np.sum(b == c) for c in categories]])
    if set(categories) <= {"F", "M"}:
        return out | {"test": "Fisher exact", "p_value": float(sps.fisher_exact(table).pvalue)}
    return out | {"test": "chi-square", "p_value": float(sps.chi2_contingency(table).pvalue)}


def split_balance(train: pd.DataFrame, test: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Whether train and test are balanced in age (Mann-Whitney U, medians reported) and sex
    (Fisher exact on M/F counts, chi-square for other codings), within AD, within CN and
    overall, so an accuracy is not read off a confounded split.

    A subject present on several rows (slices) counts once. A missing column or no values gives
    a check with test "not available" that does not fail. No multiple-testing correction: a
    warning is a prompt to look, not a verdict."""
    checks: list[dict[str, Any]] = []
    warnings: list[str] = []
    train, test = _one_per_subject(train), _one_per_subject(test)
    has_group = "group" in train.columns and "group" in test.columns
    groups = ["AD", "CN", "all"] if has_group else ["all"]
    for variable, check in (("age", _age_check), ("sex", _sex_check)):
        for group in groups:
            row: dict[str, Any] = {"variable": variable, "group": group}
            a, b = train, test
            if group != "all":
                a, b = train[train["group"] == group], test[test["group"] == group]
            found = {}
            if variable in a.columns and variable in b.columns:
                found = check(a[variable], b[variable])
            if not found:
                row |= {
                    "train_summary": "",
                    "test_summary": "",
                    "test": "not available",
                    "p_value": NAN,
                    "balanced": True,
                }
                checks.append(row)
                continue
            row |= found
            row["balanced"] = bool(not row["p_value"] < alpha)
            checks.append(row)
            if not row["balanced"]:
                warnings.append(
                    f"{variable} differs between train and test in group {group} "
                    f"({row['test']} p = {row['p_value']:.3g} < {alpha:g}; train "
                    f"{row['train_summary']}, test {row['test_summary']})"
                )
    return {"checks": checks, "balanced": all(c["balanced"] for c in checks), "warnings": warnings}


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
