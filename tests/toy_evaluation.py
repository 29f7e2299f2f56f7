"""Helpers the unit tests of brainmr.evaluate share: stage configs with overrides, toy slices
written to disk, synthetic KDE coordinates with a known answer, and the Wilson interval by its
closed form (to check the code's intervals against). tests/conftest.py builds the shared toy
data from them once per session (fixtures toy_split and kde_files)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from brainmr import io
from brainmr.config import stage_config
from brainmr.evaluate.config import ClassifierConfig, KdeConfig
from brainmr.evaluate.judges.kde import score_coordinates

Z95 = 1.959963984540054  # standard normal 97.5% quantile


def kde_config(**overrides) -> KdeConfig:
    return stage_config(KdeConfig, "evaluate", **overrides)


def classifier_config(**overrides) -> ClassifierConfig:
    return stage_config(ClassifierConfig, "evaluate", **overrides)


def write_slices(folder, images, group, prefix) -> pd.DataFrame:
    """Save each image as ``{prefix}_{group}_{i:03d}.npy``: one subject per slice."""
    rows = []
    for i, image in enumerate(images):
        subject = f"{prefix}_{group}_{i:03d}"
        path = folder / f"{subject}.npy"
        io.save_npy(path, image)
        rows.append({"subject": subject, "group": group, "path": str(path)})
    return pd.DataFrame(rows)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for k of n, written out (Wilson 1927; Newcombe 1998 method 3)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def identical_classes(seed: int, n_ad: int, n_cn: int, d: int, sd=1.0, n_test: int = 2000):
    """AD and CN training coordinates from one distribution, plus fresh test points from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_ad + n_cn, d)) * sd
    groups = np.array(["AD"] * n_ad + ["CN"] * n_cn)
    return z, groups, rng.normal(size=(n_test, d)) * sd


def prefer_cn(densities, z_test) -> float:
    """Fraction of test points whose CN log-likelihood is higher: for images generated as AD,
    the misclassified fraction; with identical classes it should be 0.5."""
    loglik = score_coordinates(densities, z_test)
    return float(np.mean(loglik["CN"] > loglik["AD"]))


def direct_loglik(x: np.ndarray, data: np.ndarray, h: float) -> np.ndarray:
    """log mean_i N(x; data_i, h^2 I), written out."""
    d2 = ((x[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    d = data.shape[1]
    return (
        logsumexp(-d2 / (2 * h * h), axis=1) - np.log(len(data)) - d / 2 * np.log(2 * np.pi * h * h)
    )
