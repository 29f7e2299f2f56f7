"""Extra evaluations the paper lacks: memorization (nearest training slice correlation) and
fidelity/diversity in a feature space (Frechet distance; precision, recall, density, coverage
of Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models")."""

from __future__ import annotations

import math

import numpy as np

from brainmr.evaluate.kde import pairwise_sq_distances


def memorization_threshold(real_nn_corr: np.ndarray, quantile: float) -> float:
    """Correlation above which a generated image is closer to a training slice than all but a
    share (1 - quantile) of held-out real slices are to theirs."""
    real_nn_corr = np.asarray(real_nn_corr, dtype=float)
    if real_nn_corr.size == 0:
        raise ValueError("memorization threshold needs held-out real nearest-neighbour values")
    return float(np.quantile(real_nn_corr, quantile))


def memorization_summary(nn_corr: np.ndarray, threshold: float) -> dict[str, float]:
    nn_corr = np.asarray(nn_corr, dtype=float)
    if nn_corr.size == 0:
        nan = math.nan
        return {"nn_corr_median": nan, "nn_corr_p95": nan, "nn_corr_max": nan, "n_memorized": 0}
    return {
        "nn_corr_median": float(np.median(nn_corr)),
        "nn_corr_p95": float(np.quantile(nn_corr, 0.95)),
        "nn_corr_max": float(nn_corr.max()),
        "n_memorized": int(np.sum(nn_corr > threshold)),
    }


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussians fitted to the rows.

    tr((S_a S_b)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S_a^1/2 S_b S_a^1/2 (same spectrum), which stays stable for singular covariances
    (fewer samples than features)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_cross = float(np.sum(np.sqrt(np.clip(cross, 0, None))))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_cross)
    return max(value, 0.0)


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(pairwise_sq_distances(x, x))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k capped at n - 1 per set.

    precision: share of fake points inside some real k-NN ball; recall: share of real points
    inside some fake k-NN ball; density: mean number of real balls holding a fake point / k;
    coverage: share of real balls that hold at least one fake point."""
    nan = math.nan
    out = {"k": nan, "precision": nan, "recall": nan, "density": nan, "coverage": nan}
    if len(real) < 2 or len(fake) < 1:
        return out
    k_real = min(k, len(real) - 1)
    radius_real = _kth_neighbour_radius(real, k_real)
    dist = np.sqrt(pairwise_sq_distances(real, fake))  # (n_real, n_fake)
    inside_real = dist < radius_real[:, None]
    out |= {
        "k": k_real,
        "precision": float(inside_real.any(axis=0).mean()),
        "density": float(inside_real.sum() / (k_real * len(fake))),
        "coverage": float((dist.min(axis=1) < radius_real).mean()),
    }
    if len(fake) >= 2:
        radius_fake = _kth_neighbour_radius(fake, min(k, len(fake) - 1))
        out["recall"] = float((dist < radius_fake[None, :]).any(axis=1).mean())
    return out
