"""A morphometric judge: anatomy read directly from a coronal slice, with no model in between.

AD shows in the centre coronal slice (MNI y = -18 mm) as enlarged lateral ventricles, wider sulci
and a smaller brain. Per normalised slice (brainmr.evaluate.images.normalise_intensity):

- brain: foreground (> FOREGROUND_LEVEL) with its holes filled (the dark ventricles belong to the
  brain), largest connected component;
- CSF: brain pixels below the first of three-class Otsu thresholds (CSF, grey, white matter)
  and below CSF_OF_WHITE of the white-matter class mean;
- ventricles (central CSF: lateral ventricles with their temporal horns, third ventricle): CSF
  at least RIM_MM inside the brain, in components of dark (lowest Otsu class) pixels that do
  not reach the brain's edge as sulci and fissures do, whose centroid lies in the middle
  CENTRAL_WIDTH of the brain's width (not the Sylvian fissures).

Then, per measure, the real AD - CN difference and the share of it each generated set
reproduces. Pure functions (arrays or tables in, numbers or tables out).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats as sps

from brainmr import GROUPS
from brainmr.conditions import REAL_CONDITION
from brainmr.evaluate.ceiling import is_ceiling
from brainmr.evaluate.images import FOREGROUND_LEVEL
from brainmr.evaluate.stats import mean_interval
from brainmr.io import require_columns, require_groups

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


def ventricle_mask(brain: np.ndarray, csf: np.ndarray, dark: np.ndarray, spacing_mm: float):
    """Central CSF: deep inside the brain, not joined to the brain's surface through dark
    (CSF or grey-matter-dark) pixels as sulci and fissures are, near the midline."""
    deep = ndi.binary_erosion(brain, _disk(RIM_MM / spacing_mm), border_value=0)
    rim = brain & ~ndi.binary_erosion(brain, _disk(SURFACE_MM / spacing_mm), border_value=0)
    labels, _ = ndi.label(dark | csf)
    open_to_surface = np.unique(labels[rim & (dark | csf)])
    candidates = csf & deep & ~np.isin(labels, open_to_surface[open_to_surface > 0])
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


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN (not inf) when the denominator is 0 or not finite."""
    if not (np.isfinite(numerator) and np.isfinite(denominator)) or denominator == 0:
        return NAN
    return float(numerator / denominator)


def class_difference(ad, cn, confidence: float = 0.95) -> dict[str, float]:
    """AD minus CN difference of means of independent images or subjects, with Welch's t
    interval (unequal variances: generated and real sets differ in spread). NaN with fewer than
    two finite values on a side."""
    ad = np.asarray(ad, dtype=float).ravel()
    cn = np.asarray(cn, dtype=float).ravel()
    ad, cn = ad[np.isfinite(ad)], cn[np.isfinite(cn)]
    out = {
        "difference": NAN,
        "low": NAN,
        "high": NAN,
        "n_AD": int(ad.size),
        "n_CN": int(cn.size),
        "p_value": NAN,
    }
    if ad.size < 2 or cn.size < 2:
        return out
    out["difference"] = float(ad.mean() - cn.mean())
    if np.var(ad) == 0 and np.var(cn) == 0:  # no spread: the t statistic is undefined
        return out
    test = sps.ttest_ind(ad, cn, equal_var=False)
    ci = test.confidence_interval(confidence)
    out.update(low=float(ci.low), high=float(ci.high), p_value=float(test.pvalue))
    return out


def _row(measure: str, source: str, seed, ad: float, cn: float, **values) -> dict:
    row = {
        "measure": measure,
        "source": source,
        "seed": seed,
        "AD_mean": ad,
        "CN_mean": cn,
        "difference": NAN,
        "low": NAN,
        "high": NAN,
        "fraction_reproduced": NAN,
        "fraction_low": NAN,
        "fraction_high": NAN,
        "n_seeds": NAN,
    }
    row.update(values)
    return row


def morphometry_differences(
    by_seed: pd.DataFrame, reals: pd.DataFrame, sets: list[str]
) -> pd.DataFrame:
    """Per measure: the held-out and train reals' AD - CN difference (Welch interval), then per
    set in ``sets`` each seed's AD - CN difference of set means and the fraction of the held-out
    difference it reproduces, and their means across seeds with t intervals (seed "all")."""
    require_columns(by_seed, ["seed", "condition", "group", *MEASURES], "morphometry by seed")
    require_columns(reals, ["subject", "group", "split", *MEASURES], "real morphometry")
    require_groups(reals["group"], "real morphometry")
    wanted = by_seed[by_seed["condition"].isin(sets)]
    require_groups(wanted["group"], "morphometry by seed")
    rows = []
    for measure in MEASURES:
        real = {}
        for source, split in REAL_SPLITS.items():
            part = reals[reals["split"] == split]
            values = {g: part.loc[part["group"] == g, measure].to_numpy(float) for g in GROUPS}
            real[source] = class_difference(values["AD"], values["CN"])
            means = {
                g: float(np.nanmean(v)) if np.isfinite(v).any() else NAN for g, v in values.items()
            }
            rows.append(
                _row(
                    measure,
                    source,
                    "all",
                    means["AD"],
                    means["CN"],
                    difference=real[source]["difference"],
                    low=real[source]["low"],
                    high=real[source]["high"],
                )
            )
        target = real[HELD_OUT]["difference"]
        rows[-2]["fraction_reproduced"] = 1.0 if np.isfinite(target) and target != 0 else NAN
        rows[-1]["fraction_reproduced"] = _ratio(real[TRAIN]["difference"], target)
        for name in sets:
            part = wanted[wanted["condition"] == name]
            table = part.pivot_table(index="seed", columns="group", values=measure, aggfunc="mean")
            table = table.reindex(columns=list(GROUPS))
            differences, fractions = [], []
            for seed, r in table.iterrows():
                difference = float(r["AD"] - r["CN"])
                fraction = _ratio(difference, target)
                differences.append(difference)
                fractions.append(fraction)
                rows.append(
                    _row(
                        measure,
                        name,
                        int(seed),
                        float(r["AD"]),
                        float(r["CN"]),
                        difference=difference,
                        fraction_reproduced=fraction,
                        n_seeds=1,
                    )
                )
            across = mean_interval(differences)
            share = mean_interval(fractions)
            rows.append(
                _row(
                    measure,
                    name,
                    "all",
                    float(table["AD"].mean()),
                    float(table["CN"].mean()),
                    difference=across["mean"],
                    low=across["low"],
                    high=across["high"],
                    fraction_reproduced=share["mean"],
                    fraction_low=share["low"],
                    fraction_high=share["high"],
                    n_seeds=across["n"],
                )
            )
    return pd.DataFrame(rows)


def per_image_measures(scores: list[pd.DataFrame]) -> pd.DataFrame:
    """Every image's measures from the seeds' flagged score tables (first seed first), outliers
    left out as in Table 1: the held-out reals and the ceiling sets from the first seed (the same
    images in every seed), the generated sets from every seed. Column ``source``: the condition,
    the held-out reals as HELD_OUT; rows: HELD_OUT first, then the sources in order of
    appearance."""
    frames = []
    for i, table in enumerate(scores):
        table = table[~table["outlier"].astype(bool)]
        once = (table["condition"] == REAL_CONDITION) | table["condition"].map(is_ceiling)
        frames.append(table if i == 0 else table[~once])
    per_image = pd.concat(frames, ignore_index=True)
    per_image["source"] = per_image["condition"].replace({REAL_CONDITION: HELD_OUT})
    order = [HELD_OUT, *[c for c in dict.fromkeys(per_image["source"]) if c != HELD_OUT]]
    return per_image.set_index("source").loc[order].reset_index()
