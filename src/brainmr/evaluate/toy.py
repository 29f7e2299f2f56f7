"""Toy coronal-slice-like images for tests and benchmarks of the evaluation (no anatomy: an
elliptic 'brain' with grey rim, white matter and two ventricles; AD has larger ventricles)."""

from __future__ import annotations

import numpy as np

from brainmr import SLICE_SIZE
from brainmr.evaluate.images import FOREGROUND_LEVEL, NORMALISE_PERCENTILE


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0


def toy_slice(group: str, rng: np.random.Generator, atrophy: float = 1.0) -> np.ndarray:
    """One 160 x 160 float32 image in [0, 1]; ``atrophy`` scales how much larger AD's
    ventricles are."""
    yy, xx = np.mgrid[0:SLICE_SIZE, 0:SLICE_SIZE].astype(np.float32)
    cy, cx = 80 + rng.normal(0, 2), 80 + rng.normal(0, 2)
    ry, rx = rng.normal(62, 2.5), rng.normal(52, 2.5)
    image = np.zeros((SLICE_SIZE, SLICE_SIZE), np.float32)
    image[_ellipse(yy, xx, cy, cx, ry, rx)] = 0.45
    image[_ellipse(yy, xx, cy, cx, 0.78 * ry, 0.78 * rx)] = 0.85
    ventricle = rng.normal(1.0, 0.08) * (1.0 + 0.6 * atrophy if group == "AD" else 1.0)
    for side in (-1, 1):
        mask = _ellipse(yy, xx, cy - 6, cx + side * 8 * ventricle, 11 * ventricle, 4 * ventricle)
        image[mask] = 0.12
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    image = np.clip(image, 0, None)
    image[~_ellipse(yy, xx, cy, cx, ry, rx)] = 0.0  # skull-stripped background
    scale = np.percentile(image[image > FOREGROUND_LEVEL], NORMALISE_PERCENTILE)
    return np.clip(image / scale, 0, 1).astype(np.float32)


def toy_slices(group: str, n: int, seed: int, atrophy: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([toy_slice(group, rng, atrophy) for _ in range(n)])


def blob_image(bright: bool, rng: np.random.Generator) -> np.ndarray:
    """A grey disc holding a blob brighter or darker than the disc (a separable toy task that
    survives intensity normalisation)."""
    yy, xx = np.mgrid[0:SLICE_SIZE, 0:SLICE_SIZE].astype(np.float32)
    image = np.zeros((SLICE_SIZE, SLICE_SIZE), np.float32)
    image[_ellipse(yy, xx, 80, 80, 60, 60)] = 0.5
    by, bx = rng.uniform(55, 105, 2)
    image[_ellipse(yy, xx, by, bx, 12, 12)] = 0.95 if bright else 0.1
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)
