"""A morphometric judge: anatomy read directly from a coronal slice, with no model in between.

AD shows in the centre coronal slice (MNI y = -18 mm) as enlarged lateral ventricles, wider sulci
and a smaller brain. Per normalised slice (brainmr.evaluate.images.rescale_foreground):

- brain: foreground (> FOREGROUND_LEVEL) with its holes filled (the dark ventricles belong to the
  brain), largest connected component;
- CSF: brain pixels below the first of three-class Otsu thresholds (CSF, grey, white matter)
  and below CSF_OF_WHITE of the white-matter class mean;
- ventricles (central CSF: lateral ventricles with their temporal horns, third ventricle): CSF
  at least RIM_MM inside the brain, in components of dark (lowest Otsu class) pixels that do
  not reach the brain's edge as sulci and fissures do, whose centroid lies in the middle
  CENTRAL_WIDTH of the brain's width (not the Sylvian fissures).

The AD - CN differences and the share of the real one each set reproduces are
``brainmr.evaluate.table1.differences``. Pure functions (arrays in, numbers or tables out).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from brainmr.evaluate.images import FOREGROUND_LEVEL

NAN = math.nan
MEASURES = ("brain_area_mm2", "csf_fraction", "ventricle_area_mm2")
MEASURE_LABELS = {
    "brain_area_mm2": "brain area (mm²)",
    "csf_fraction": "CSF fraction of the brain",
    "ventricle_area_mm2": "lateral ventricle area (mm²)",
}
# CSF is also darker than half the white-matter class mean (T1: CSF <~ 0.3, grey matter >~ 0.55
# of white matter): a brain with little CSF (a young or CN brain) has no CSF class of its own,
# and the lowest Otsu class would then be its darkest grey matter.
CSF_OF_WHITE = 0.5
MIN_BRAIN_FRACTION = 0.01  # less brain than this share of the image: a blank image, no anatomy
OTSU_BINS = 256  # histogram bins of the three-class Otsu search (as skimage's default)
# Ventricle bodies lie >= 15 mm inside the brain; sulci are <= ~8 mm deep at this slice.
RIM_MM = 8.0
SURFACE_MM = 2.0  # dark pixels this close to the brain's edge are open to the surface (sulci)
# The ventricles lie within ~25 mm of the midline, the insulae ~40 mm out of a ~135 mm width.
CENTRAL_WIDTH = 0.5
CHANNEL_PX = 3  # dark passages narrower than this do not join a ventricle to the surface
HELD_OUT, TRAIN = "held-out reals", "train reals"  # the real sources, and their splits:
REAL_SPLITS = {HELD_OUT: "test", TRAIN: "train"}


def _disk(radius_px: float) -> np.ndarray:
    r = int(math.floor(radius_px))
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius_px * radius_px


def multi_otsu_thresholds(values: np.ndarray, bins: int = OTSU_BINS) -> tuple[float, float]:
    """The two thresholds that split ``values`` into three classes of maximal between-class
    variance (Otsu's criterion, scikit-image's threshold_multiotsu)."""
    from skimage.filters import threshold_multiotsu

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or values.min() == values.max():
        raise ValueError("three-class Otsu needs values that are not all equal")
    low, high = threshold_multiotsu(values, classes=3, nbins=bins)
    return float(low), float(high)


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Foreground with holes filled (ventricles are dark holes inside the brain), largest
    connected component (drops stray foreground specks)."""
    filled = ndi.binary_fill_holes(image > FOREGROUND_LEVEL)
    labels, n = ndi.label(filled)
    if n == 0:
        return filled
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def tissue_masks(image: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSF and dark (the lowest of three Otsu classes) pixels of the brain. CSF is the lowest
    class, but no brighter than CSF_OF_WHITE of the white-matter (highest) class mean."""
    values = image[brain]
    if values.min() == values.max():  # a flat brain has no tissue contrast, hence no CSF
        return np.zeros_like(brain), np.zeros_like(brain)
    low, high = multi_otsu_thresholds(values)
    white = float(values[values > high].mean()) if (values > high).any() else high
    dark = brain & (image <= low)
    return dark & (image <= CSF_OF_WHITE * white), dark


def _check_image(image: np.ndarray, spacing_mm: float) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"slice_morphometry needs a 2-D slice, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("slice_morphometry: image contains NaN or infinite values")
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise ValueError(f"spacing_mm must be a positive number, got {spacing_mm}")
    return image


def _touching(mask: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """The connected components of ``mask`` that have a pixel in ``rim``."""
    labels, _ = ndi.label(mask)
    hit = np.unique(labels[rim & mask])
    return np.isin(labels, hit[hit > 0])


def ventricle_mask(brain: np.ndarray, csf: np.ndarray, dark: np.ndarray, spacing_mm: float):
    """Central CSF: deep inside the brain, not joined to the brain's surface through dark
    (CSF or grey-matter-dark) pixels as sulci and fissures are, near the midline.

    Joined means through a passage at least CHANNEL_PX wide: the wide dark regions (an opening)
    and the thin ones left over are each tested for touching the surface, so a 1-px CSF channel
    from a ventricle to a sulcus (widened sulci in atrophy) does not take the ventricle with it,
    while a thin fissure that reaches the surface (or a wide sulcus) still counts as surface."""
    deep = ndi.binary_erosion(brain, _disk(RIM_MM / spacing_mm), border_value=0)
    rim = brain & ~ndi.binary_erosion(brain, _disk(SURFACE_MM / spacing_mm), border_value=0)
    dark_or_csf = dark | csf
    wide = ndi.binary_opening(dark_or_csf, np.ones((CHANNEL_PX, CHANNEL_PX), bool))
    surface = _touching(wide, rim)
    thin = dark_or_csf & ~wide  # thin dark lines open to the surface directly or via a sulcus
    open_to_surface = surface | _touching(thin, rim | ndi.binary_dilation(surface))
    candidates = csf & deep & ~open_to_surface
    parts, n = ndi.label(candidates)
    if n == 0:
        return candidates
    columns = np.flatnonzero(brain.any(axis=0))
    left, right = columns[0], columns[-1]
    middle, half = (left + right) / 2, CENTRAL_WIDTH * (right - left + 1) / 2
    centroids = ndi.center_of_mass(candidates, parts, np.arange(1, n + 1))
    central = [k + 1 for k, (_, col) in enumerate(centroids) if abs(col - middle) <= half]
    return np.isin(parts, central)


def slice_morphometry(image: np.ndarray, spacing_mm: float = 1.0) -> dict[str, float]:
    """Brain area (mm²), CSF fraction of the brain and lateral ventricle area (mm²) of one
    normalised 2-D slice; NaN for all three when the image holds (almost) no brain."""
    image = _check_image(image, spacing_mm)
    brain = brain_mask(image)
    n_brain = int(brain.sum())
    if n_brain < MIN_BRAIN_FRACTION * image.size:
        return dict.fromkeys(MEASURES, NAN)
    csf, dark = tissue_masks(image, brain)
    pixel_mm2 = float(spacing_mm) ** 2
    ventricles = ventricle_mask(brain, csf, dark, spacing_mm)
    return {
        "brain_area_mm2": n_brain * pixel_mm2,
        "csf_fraction": float(csf.sum()) / n_brain,
        "ventricle_area_mm2": float(ventricles.sum()) * pixel_mm2,
    }


def morphometry_table(images: np.ndarray, spacing_mm: float = 1.0) -> pd.DataFrame:
    """(n, H, W) stack -> one row per image with the MEASURES columns."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"morphometry_table needs an (n, H, W) stack, got shape {images.shape}")
    rows = [slice_morphometry(image, spacing_mm) for image in images]
    return pd.DataFrame(rows, columns=list(MEASURES), dtype=float)
