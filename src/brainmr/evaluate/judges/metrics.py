"""Extra evaluations the paper lacks: memorization (nearest training slice correlation inside
the brain) and fidelity/diversity in a feature space (Frechet distance; kernel inception
distance of Binkowski et al. 2018, "Demystifying MMD GANs"; precision, recall, density,
coverage of Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative
models")."""

from __future__ import annotations

import math

import numpy as np

from brainmr.evaluate.images import FOREGROUND_LEVEL


def brain_mask(
    pixels: np.ndarray, level: float = FOREGROUND_LEVEL, min_fraction: float = 0.5
) -> np.ndarray:
    """Boolean (D,) mask of the pixels that are foreground (> ``level``) in at least
    ``min_fraction`` of the rows (flattened training slices): the brain, without the shared
    black background."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or len(pixels) == 0:
        raise ValueError(f"brain_mask needs a non-empty (n, D) array, got shape {pixels.shape}")
    return np.mean(pixels > level, axis=0) >= min_fraction


def _standardise_rows(pixels: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm rows, so a dot product is a Pearson correlation (flat rows -> 0)."""
    centred = pixels - pixels.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def masked_nearest_neighbours(
    query: np.ndarray, reference: np.ndarray, mask: np.ndarray, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Index and Pearson correlation of each query row's most correlated reference row, on the
    ``mask`` pixels only: unmasked, the common black background makes any two aligned slices
    correlate ~0.95, hiding whether the brain itself was copied. Flat rows correlate 0."""
    query, reference = np.asarray(query), np.asarray(reference)
    mask = np.asarray(mask, dtype=bool).ravel()
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(f"query {query.shape} and reference {reference.shape} must be (n, D)")
    if mask.shape != (query.shape[1],):
        raise ValueError(f"mask has {mask.size} pixels, images have {query.shape[1]}")
    if not mask.any():
        raise ValueError("mask selects no pixels")
    if len(reference) == 0:
        raise ValueError("masked_nearest_neighbours needs at least one reference row")
    ref = _standardise_rows(reference[:, mask])
    index = np.empty(len(query), dtype=np.int64)
    corr = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), chunk):  # bound the (query x reference) matrix
        c = _standardise_rows(query[start : start + chunk, mask]) @ ref.T
        best = np.argmax(c, axis=1)
        index[start : start + len(c)] = best
        corr[start : start + len(c)] = c[np.arange(len(c)), best]
    return index, np.clip(corr, -1.0, 1.0)


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


def kid(a: np.ndarray, b: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Kernel inception distance: the unbiased MMD^2 estimate between the row sets with the
    polynomial kernel k(x, y) = (x.y / d + coef0)^degree (Binkowski et al. 2018). Unlike the
    Frechet distance it is unbiased in the set sizes, so it can be slightly negative when the
    sets match; nan if either set has fewer than 2 rows."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"kid needs (n, d) arrays with equal d, got {a.shape} and {b.shape}")
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        return math.nan
    d = a.shape[1]
    k_aa = (a @ a.T / d + coef0) ** degree
    k_bb = (b @ b.T / d + coef0) ** degree
    k_ab = (a @ b.T / d + coef0) ** degree
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of a and b (clipped at 0 against rounding).
    Kept here rather than imported from kde so the metrics stay free of the stage modules."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(pairwise_sq_distances(x, x))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k capped at n - 1 per set.

    precision: share of fake points inside some real k-NN ball; recall: share of real points
    inside some fake k-NN ball; density: mean number of real balls holding a fake point / k;
    coverage: share of real balls that hold at least one fake point."""
    if len(real) < 2 or len(fake) < 1:
        return prdc_against(real, np.full(len(real), math.nan), fake, k)
    return prdc_against(real, real_radius(real, k), fake, k)


def real_radius(real: np.ndarray, k: int) -> np.ndarray:
    """Each real point's k-NN radius (k capped at n - 1), to reuse against several fake sets."""
    return _kth_neighbour_radius(real, min(k, len(real) - 1))


def prdc_against(
    real: np.ndarray, radius_real: np.ndarray, fake: np.ndarray, k: int
) -> dict[str, float]:
    """prdc with the real points' radii given (``real_radius``)."""
    nan = math.nan
    out = {"k": nan, "precision": nan, "recall": nan, "density": nan, "coverage": nan}
    if len(real) < 2 or len(fake) < 1:
        return out
    k_real = min(k, len(real) - 1)
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
