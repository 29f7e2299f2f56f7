"""The outlier rule (paper 2.3, 3): images that clearly failed have a much lower likelihood.

An image's best log-likelihood is its larger log-likelihood over the two class KDEs. With the
best log-likelihoods of the held-out real slices as reference,

    threshold = quantile(real best log-likelihoods, cfg.outlier_quantile) - cfg.outlier_margin

and an image is an outlier when its best log-likelihood < threshold. Since the threshold is at or
below that quantile, at most a share cfg.outlier_quantile of held-out reals can fall below it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RULE = "best log-likelihood < quantile(held-out real best log-likelihood, q) - margin"


def best_loglik(scores: pd.DataFrame) -> np.ndarray:
    """Max over classes of the per-image log-likelihoods (score TSV columns loglik_AD/_CN)."""
    return np.maximum(scores["loglik_AD"].to_numpy(float), scores["loglik_CN"].to_numpy(float))


def outlier_threshold(real_best: np.ndarray, quantile: float, margin: float) -> float:
    real_best = np.asarray(real_best, dtype=float)
    if real_best.size == 0:
        raise ValueError("outlier threshold needs at least one held-out real slice")
    return float(np.quantile(real_best, quantile) - margin)


def flag_outliers(best: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(best, dtype=float) < threshold
