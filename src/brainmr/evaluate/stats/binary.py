"""A binary classifier's figures (the AD/CN CNN, the attribute judges): the one decision
threshold, the label coding, the Brier score, bootstrap intervals on accuracy and AUC, and the
reliability table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainmr import LABELS
from brainmr.evaluate.stats.intervals import NAN, accuracy_interval, check_confidence

AD, CN = LABELS.index("AD"), LABELS.index("CN")  # the label coding of brainmr.LABELS


THRESHOLD = 0.5  # the one decision threshold: P(AD) >= THRESHOLD -> AD (P(M) likewise -> M)


def ad_labels(groups: Any) -> np.ndarray:
    """The 0/1 labels of group names (brainmr.LABELS: AD -> 1, any other name -> 0)."""
    return np.where(np.asarray(groups).astype(str) == "AD", AD, CN)


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
    confidence = check_confidence(confidence)
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
