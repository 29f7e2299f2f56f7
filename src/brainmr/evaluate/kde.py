"""Kernel density log-likelihood of images under the AD and CN training slices (paper 2.3, 1).

Space: images normalised (brainmr.evaluate.images), flattened at 160 x 160, projected with one PCA
fitted on the training slices of both classes (so both KDEs live in the same space and their
log-likelihoods are comparable), whiten=False. One Gaussian KDE per class on its training slices.

The KDE's coordinates are the PCA scores plus one more: the image's distance to the PCA subspace
(the norm of its reconstruction residual, in the same pixel units). Without it, anything
orthogonal to the training slices' main modes (pure noise, a blank image, junk in the background)
projects near the training data and looks likely; measured on toy slices, noise then scores as
high as real held-out slices. The extra coordinate is shared by both classes, so it barely moves
the AD-vs-CN comparison, and it is what lets the outlier rule see clear failures.

Bandwidth: cfg.bandwidth (absolute, in PCA units) when set; otherwise chosen per class by exact
leave-one-out log-likelihood over cfg.bandwidth_grid x the class's scale, where the scale is the
root mean per-component variance of its PCA coordinates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity

from brainmr import io
from brainmr.evaluate.config import EvaluateConfig
from brainmr.evaluate.images import (
    FOREGROUND_LEVEL,
    IMAGE_SIZE,
    MIN_FOREGROUND_FRACTION,
    NORMALISE_PERCENTILE,
    flatten,
    load_normalised,
    require_columns,
    require_groups,
)

log = logging.getLogger(__name__)
GROUPS = ("AD", "CN")


@dataclass
class KdeModel:
    """PCA projection plus one fitted KernelDensity per class."""

    pca: PCA
    kdes: dict[str, KernelDensity]
    bandwidths: dict[str, float]
    n_per_class: dict[str, int]
    selection: dict[str, dict] = field(default_factory=dict)

    def project(self, pixels: np.ndarray) -> np.ndarray:
        """KDE coordinates: PCA scores, then the residual norm (see the module docstring)."""
        return kde_coordinates(self.pca, pixels)

    def score(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Log-likelihood of each row of ``pixels`` (n, 160*160) under each class's KDE."""
        z = self.project(pixels)
        return {group: kde.score_samples(z) for group, kde in self.kdes.items()}


def kde_coordinates(pca: PCA, pixels: np.ndarray) -> np.ndarray:
    scores = pca.transform(pixels)
    residual = pixels - pca.inverse_transform(scores)
    return np.column_stack([scores, np.linalg.norm(residual, axis=1)])


def pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def gaussian_kde_loglik(points: np.ndarray, data: np.ndarray, bandwidth: float) -> np.ndarray:
    """Direct Gaussian KDE log-density: log mean_i N(x; data_i, h^2 I)."""
    d = data.shape[1]
    log_kernel = -pairwise_sq_distances(points, data) / (2.0 * bandwidth**2)
    norm = 0.5 * d * np.log(2.0 * np.pi * bandwidth**2) + np.log(len(data))
    return logsumexp(log_kernel, axis=1) - norm


def leave_one_out_loglik(data: np.ndarray, bandwidth: float) -> float:
    """Mean leave-one-out log-likelihood of ``data`` under its own Gaussian KDE."""
    n, d = data.shape
    log_kernel = -pairwise_sq_distances(data, data) / (2.0 * bandwidth**2)
    np.fill_diagonal(log_kernel, -np.inf)
    norm = 0.5 * d * np.log(2.0 * np.pi * bandwidth**2) + np.log(n - 1)
    return float(np.mean(logsumexp(log_kernel, axis=1) - norm))


def data_scale(z: np.ndarray) -> float:
    """Root mean per-component variance: the unit the bandwidth grid is expressed in."""
    return float(np.sqrt(np.mean(z.var(axis=0))))


def select_bandwidth(z: np.ndarray, grid: list[float]) -> tuple[float, dict]:
    """Bandwidth maximising the leave-one-out log-likelihood over ``grid`` x the data's scale."""
    scale = data_scale(z)
    if scale <= 0:
        raise ValueError("all training slices of a class are identical in PCA space")
    scores = {float(g): leave_one_out_loglik(z, g * scale) for g in grid}
    best = max(scores, key=scores.get)
    info = {"rule": "leave-one-out log-likelihood", "scale": scale, "loo_loglik": scores}
    return best * scale, info


def fit_kde_model(pixels: np.ndarray, groups: np.ndarray, cfg: EvaluateConfig) -> KdeModel:
    """Fit the shared PCA and one KDE per class. ``pixels``: (n, D) normalised, flattened."""
    groups = np.asarray(groups)
    counts = {g: int(np.sum(groups == g)) for g in GROUPS}
    for g, n in counts.items():
        if n < 2:
            raise ValueError(f"KDE needs at least 2 training slices of {g}, got {n}")
    n_components = min(cfg.pca_components, len(pixels) - 1, pixels.shape[1])
    if n_components < cfg.pca_components:
        log.warning("PCA components capped at %d (n_samples - 1)", n_components)
    pca = PCA(n_components=n_components, whiten=False, random_state=cfg.seed).fit(pixels)
    z = kde_coordinates(pca, pixels)
    kdes, bandwidths, selection = {}, {}, {}
    for g in GROUPS:
        zg = z[groups == g]
        if cfg.bandwidth is not None:
            h, info = float(cfg.bandwidth), {"rule": "fixed (cfg.bandwidth, PCA units)"}
        else:
            h, info = select_bandwidth(zg, cfg.bandwidth_grid)
        kdes[g] = KernelDensity(kernel="gaussian", bandwidth=h).fit(zg)
        bandwidths[g] = h
        selection[g] = info
        log.info("KDE %s: n=%d bandwidth=%.4g (%s)", g, len(zg), h, info["rule"])
    return KdeModel(pca, kdes, bandwidths, counts, selection)


def kde_summary(model: KdeModel, cfg: EvaluateConfig) -> dict:
    """What the JSON beside the model records (and Table 1's notes repeat)."""
    ratio = model.pca.explained_variance_ratio_
    return {
        "space": (
            f"PCA scores of flattened {IMAGE_SIZE}x{IMAGE_SIZE} images (whiten=False, fitted on "
            "the training slices of both classes) plus the PCA reconstruction residual norm"
        ),
        "dimensions": int(model.pca.n_components_) + 1,
        "normalisation": (
            f"image / percentile(pixels > {FOREGROUND_LEVEL}, {NORMALISE_PERCENTILE}), clipped to "
            f"[0, 1]; unscaled if foreground < {MIN_FOREGROUND_FRACTION:.0%} of pixels"
        ),
        "components_requested": cfg.pca_components,
        "components": int(model.pca.n_components_),
        "explained_variance_ratio": [float(r) for r in ratio],
        "explained_variance_total": float(ratio.sum()),
        "kernel": "gaussian",
        "bandwidths": model.bandwidths,
        "bandwidth_selection": model.selection,
        "bandwidth_grid": list(cfg.bandwidth_grid),
        "n_per_class": model.n_per_class,
        "seed": cfg.seed,
    }


def fit_kde(*, train: pd.DataFrame, out_model: Path, out_json: Path, cfg: EvaluateConfig) -> None:
    """Fit the KDEs on the training slices (columns path, group, subject); save joblib + JSON."""
    require_columns(train, ["path", "group", "subject"], "KDE training table")
    require_groups(train["group"], "KDE training table")
    pixels = flatten(load_normalised(train["path"]))
    model = fit_kde_model(pixels, train["group"].to_numpy(), cfg)
    with io.atomic_path(out_model) as tmp:
        joblib.dump(model, tmp)
    io.write_json(out_json, kde_summary(model, cfg))


def load_kde(path: Path) -> KdeModel:
    model = joblib.load(path)
    if not isinstance(model, KdeModel):
        raise ValueError(f"{path}: not a brainmr KDE model ({type(model).__name__})")
    return model
