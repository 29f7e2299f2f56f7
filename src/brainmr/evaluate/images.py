"""Loading and intensity normalisation shared by every evaluation (KDE, CNN, nearest neighbours).

Real slices (.npy, float in [0, 1]) and generated images (8-bit PNG, read as [0, 1]) go through
the same normalisation, so that a generator that is merely brighter or darker than the real data
is not penalised by the KDE:

    foreground = pixels > FOREGROUND_LEVEL
    image      = clip(image / percentile(image[foreground], NORMALISE_PERCENTILE), 0, 1)

An image with almost no foreground (< MIN_FOREGROUND_FRACTION of its pixels, e.g. a blank
image) is left unscaled: stretching its faint noise to full range would invent content.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from brainmr import SLICE_SIZE
from brainmr.io import load_image

FOREGROUND_LEVEL = 0.05
NORMALISE_PERCENTILE = 99.5
MIN_FOREGROUND_FRACTION = 0.01


def rescale_foreground(image: np.ndarray) -> np.ndarray:
    """Scale an image so its foreground's 99.5th percentile maps to 1, then clip to [0, 1]."""
    foreground = image[image > FOREGROUND_LEVEL]
    if foreground.size < MIN_FOREGROUND_FRACTION * image.size:
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    scale = float(np.percentile(foreground, NORMALISE_PERCENTILE))
    return np.clip(image / scale, 0.0, 1.0).astype(np.float32)


def load_normalised(paths: Iterable[str | Path]) -> np.ndarray:
    """Load and normalise images into an (n, 160, 160) float32 stack."""
    images = [rescale_foreground(load_image(p)) for p in paths]
    if not images:
        return np.zeros((0, SLICE_SIZE, SLICE_SIZE), dtype=np.float32)
    return np.stack(images)


def flatten(images: np.ndarray) -> np.ndarray:
    """(n, H, W) -> (n, H * W) float64, the KDE's pixel space."""
    return images.reshape(len(images), -1).astype(np.float64)
