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

Bandwidth: one for both classes by default, chosen by leave-one-out likelihood
(brainmr.evaluate.judges.bandwidth, which says why the two KDEs must not be tuned apart).

Balance: a KDE on fewer points has a lower expected log-density at a typical point (Jensen: the
log of a noisier mean), so unequal class sizes tilt the verdict towards the larger class. With
kde_balance "subsample" the larger class is scored as the mean log-likelihood over
kde_balance_repeats KDEs, each on a random subsample (without replacement) of the smaller class's
size; the smaller class uses all its points.

The sensitivity of Table 1's counts to these choices is brainmr.evaluate.studies.kde_sensitivity's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.neighbors import KernelDensity

from brainmr import GROUPS, SLICE_SIZE, io
from brainmr.evaluate.config import KdeConfig
from brainmr.evaluate.images import (
    FOREGROUND_LEVEL,
    MIN_FOREGROUND_FRACTION,
    NORMALISE_PERCENTILE,
    flatten,
    load_normalised,
)
from brainmr.evaluate.judges.bandwidth import choose_bandwidths, effective_rule
from brainmr.evaluate.stats.binary import ad_labels
from brainmr.io import require_columns, require_groups

log = logging.getLogger(__name__)


@dataclass
class ClassDensity:
    """One class's Gaussian KDE: the mean log-density over one or more member KDEs (several when
    the class is subsampled for balance), all with the same bandwidth."""

    bandwidth: float
    members: list[KernelDensity]

    def score_samples(self, z: np.ndarray) -> np.ndarray:
        if len(z) == 0:
            return np.zeros(0)
        return np.mean([kde.score_samples(z) for kde in self.members], axis=0)


@dataclass
class KdeModel:
    """PCA projection plus one fitted ClassDensity per class."""

    pca: PCA
    densities: dict[str, ClassDensity]
    bandwidths: dict[str, float]
    n_per_class: dict[str, int]
    selection: dict[str, dict] = field(default_factory=dict)
    bandwidth_rule: str = "shared"
    balance: str = "none"

    def project(self, pixels: np.ndarray) -> np.ndarray:
        """KDE coordinates: PCA scores, then the residual norm (see the module docstring)."""
        return kde_coordinates(self.pca, pixels)

    def score(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Log-likelihood of each row of ``pixels`` (n, 160*160) under each class's KDE."""
        return score_coordinates(self.densities, self.project(pixels))


# ---------------------------------------------------------------- PCA space


def fit_pca(pixels: np.ndarray, n_components: int, seed: int) -> PCA:
    return PCA(n_components=n_components, whiten=False, random_state=seed).fit(pixels)


def capped_components(requested: int, pixels: np.ndarray) -> int:
    """PCA components actually fitted: at most n_samples - 1 and n_features."""
    return component_cap(requested, len(pixels), pixels.shape[1])


def component_cap(requested: int, n_samples: int, n_features: int) -> int:
    """The one cap on PCA components: at least 1, at most n_samples - 1 and n_features."""
    return max(1, min(int(requested), n_samples - 1, n_features))


def kde_coordinates(pca: PCA, pixels: np.ndarray) -> np.ndarray:
    scores = pca.transform(pixels)
    residual = pixels - pca.inverse_transform(scores)
    return np.column_stack([scores, np.linalg.norm(residual, axis=1)])


# ---------------------------------------------------------------- densities


def balance_subsets(
    counts: dict[str, int], balance: str, repeats: int, seed: int
) -> dict[str, list[np.ndarray]]:
    """Row indices (into each class's own points) of each class's member KDEs.

    "subsample": the larger class gets ``repeats`` draws of the smaller class's size, without
    replacement, from ``np.random.default_rng(seed)`` in order (``rng.choice(n_large, n_small,
    replace=False)`` per repeat); the smaller class, and both classes when equal in size or
    balance is "none", get all their points."""
    subsets = {g: [np.arange(n)] for g, n in counts.items()}
    if balance == "none" or counts["AD"] == counts["CN"]:
        return subsets
    small, large = sorted(GROUPS, key=lambda g: counts[g])
    rng = np.random.default_rng(seed)
    subsets[large] = [
        rng.choice(counts[large], counts[small], replace=False) for _ in range(repeats)
    ]
    return subsets


def fit_densities(
    z: np.ndarray,
    groups: np.ndarray,
    bandwidths: dict[str, float],
    *,
    balance: str = "none",
    repeats: int = 1,
    seed: int = 0,
) -> dict[str, ClassDensity]:
    """One ClassDensity per class on its rows of ``z`` with the given bandwidths."""
    groups = np.asarray(groups)
    points = {g: z[groups == g] for g in GROUPS}
    subsets = balance_subsets({g: len(p) for g, p in points.items()}, balance, repeats, seed)
    return {
        g: ClassDensity(
            bandwidths[g],
            [
                KernelDensity(kernel="gaussian", bandwidth=bandwidths[g]).fit(points[g][rows])
                for rows in subsets[g]
            ],
        )
        for g in GROUPS
    }


def fit_class_densities(
    z: np.ndarray, groups: np.ndarray, cfg: KdeConfig
) -> tuple[dict[str, ClassDensity], dict[str, float], dict[str, dict]]:
    """The estimator on KDE coordinates ``z`` (n, d): bandwidths by cfg's rule, then each class's
    density (balanced as cfg says). Returns (densities, bandwidths, selection)."""
    groups = np.asarray(groups)
    require_two_per_class(groups)
    bandwidths, selection = choose_bandwidths(z, groups, cfg)
    densities = fit_densities(
        z,
        groups,
        bandwidths,
        balance=cfg.kde_balance,
        repeats=cfg.kde_balance_repeats,
        seed=cfg.seed,
    )
    for g in GROUPS:
        log.info(
            "KDE %s: n=%d bandwidth=%.4g (rule %s, balance %s, %d member KDE(s))",
            g,
            int(np.sum(groups == g)),
            bandwidths[g],
            effective_rule(cfg),
            cfg.kde_balance,
            len(densities[g].members),
        )
    return densities, bandwidths, selection


def score_coordinates(densities: dict[str, ClassDensity], z: np.ndarray) -> dict[str, np.ndarray]:
    return {g: density.score_samples(z) for g, density in densities.items()}


def require_two_per_class(groups: np.ndarray) -> dict[str, int]:
    counts = {g: int(np.sum(groups == g)) for g in GROUPS}
    for g, n in counts.items():
        if n < 2:
            raise ValueError(f"KDE needs at least 2 training slices of {g}, got {n}")
    return counts


def fit_kde_model(pixels: np.ndarray, groups: np.ndarray, cfg: KdeConfig) -> KdeModel:
    """Fit the shared PCA and one KDE per class. ``pixels``: (n, D) normalised, flattened."""
    groups = np.asarray(groups)
    counts = require_two_per_class(groups)
    n_components = capped_components(cfg.pca_components, pixels)
    if n_components < cfg.pca_components:
        log.warning("PCA components capped at %d (n_samples - 1)", n_components)
    pca = fit_pca(pixels, n_components, cfg.seed)
    densities, bandwidths, selection = fit_class_densities(
        kde_coordinates(pca, pixels), groups, cfg
    )
    return KdeModel(
        pca, densities, bandwidths, counts, selection, effective_rule(cfg), cfg.kde_balance
    )


# ---------------------------------------------------------------- verdict


def likelihood_verdict(loglik_ad: np.ndarray, loglik_cn: np.ndarray) -> np.ndarray:
    """ "AD" where the log-likelihood under the AD KDE is higher, else "CN"."""
    return np.where(np.asarray(loglik_ad) > np.asarray(loglik_cn), "AD", "CN")


def verdict_metrics(groups: np.ndarray, loglik_ad: np.ndarray, loglik_cn: np.ndarray) -> dict:
    """The likelihood verdict as a classifier of images of known ``groups`` (held-out reals)."""
    groups = np.asarray(groups).astype(str)
    loglik_ad, loglik_cn = np.asarray(loglik_ad, float), np.asarray(loglik_cn, float)
    verdict = likelihood_verdict(loglik_ad, loglik_cn)
    labels = ad_labels(groups)
    both = 0 < labels.sum() < len(labels)
    return {
        "accuracy": float(np.mean(verdict == groups)) if len(groups) else None,
        "balanced_accuracy": float(balanced_accuracy_score(groups, verdict)) if both else None,
        "auc": float(roc_auc_score(labels, loglik_ad - loglik_cn)) if both else None,
        "n_AD": int(labels.sum()),
        "n_CN": int(len(labels) - labels.sum()),
    }


def misclassified_mask(groups: np.ndarray, loglik: dict[str, np.ndarray]) -> np.ndarray:
    """Images whose likelihood verdict is not their class (the rule, ties included, of Table
    1's 'misclassified (likelihood)' column)."""
    return likelihood_verdict(loglik["AD"], loglik["CN"]) != np.asarray(groups).astype(str)


# ---------------------------------------------------------------- files


def kde_summary(model: KdeModel, cfg: KdeConfig) -> dict:
    """What the JSON beside the model records (and Table 1's notes repeat)."""
    ratio = model.pca.explained_variance_ratio_
    return {
        "space": (
            f"PCA scores of flattened {SLICE_SIZE}x{SLICE_SIZE} images (whiten=False, fitted on "
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
        "bandwidth_rule": model.bandwidth_rule,
        "balance": model.balance,
        "balance_repeats": cfg.kde_balance_repeats if model.balance == "subsample" else None,
        "bandwidths": model.bandwidths,
        "bandwidth_bounds": [float(b) for b in cfg.bandwidth_bounds],
        "at_bound": any(info.get("at_bound", False) for info in model.selection.values()),
        "bandwidth_selection": model.selection,
        "n_per_class": model.n_per_class,
        "seed": cfg.seed,
    }


def fit_kde(*, train: pd.DataFrame, out_model: Path, out_json: Path, cfg: KdeConfig) -> None:
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
