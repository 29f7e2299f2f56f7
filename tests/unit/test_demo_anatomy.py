"""The demo's real slices carry a known age and sex signal that the morphometric judge can read.

Slices are made cheaply, as preprocessing would make them from a perfectly stripped and aligned
scan (no pose, deformation, bias or noise): the subject canvas is the template grid plus NECK_MM
below, and the sex scale, which synthesis applies when sampling, is applied to the canvas with
the same map (sex_scaling) about the head centre.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import stats as sps

from brainmr import SLICE_SIZE
from brainmr.cohort.anatomy import (
    GROUP_ATROPHY,
    NECK_MM,
    SEX_SCALE,
    sex_scaling,
    subject_canvas,
    template_anatomy,
)
from brainmr.evaluate.images import rescale_foreground as evaluation_normalise
from brainmr.evaluate.judges.morphometry import slice_morphometry
from brainmr.preprocess.slicing import center_coronal_slice, scale_by_brain_percentile

AGES = np.array([60, 63, 66, 70, 73, 76, 79, 83, 86, 89])  # spread over the demo's 60-89
SHUFFLE = np.random.default_rng(0).permutation(len(AGES))  # a fixed permutation of the ages
SEX_AGE = 75  # the sex comparison holds age fixed


def demo_measures(group: str, seed: int, age: float, sex: str | None = None) -> dict[str, float]:
    """The morphometric judge's measures of a subject's normalised centre coronal slice."""
    anatomy = template_anatomy()
    canvas, mask = subject_canvas(anatomy, np.random.default_rng(seed), GROUP_ATROPHY[group], age)
    if sex is not None:  # canvas voxel -> template mm -> (scaled) canvas voxel
        to_source = np.linalg.inv(anatomy.affine) @ sex_scaling(sex) @ anatomy.affine
        matrix, offset = to_source[:3, :3], to_source[:3, 3]
        canvas = ndi.affine_transform(canvas, matrix, offset, order=1)
        mask = ndi.affine_transform(mask.astype(np.float32), matrix, offset, order=1) > 0.5
    inside = mask[..., NECK_MM:].astype(bool)
    aligned = np.where(inside, canvas[..., NECK_MM:], 0.0)
    image = scale_by_brain_percentile(
        center_coronal_slice(aligned, SLICE_SIZE), aligned[inside], 99.5
    )
    return slice_morphometry(evaluation_normalise(image))


@pytest.fixture(scope="module")
def ventricles():
    """Ventricle area (mm2) of CN and AD subjects over AGES (the same seeds in both groups;
    one sex for all, so its scale is left out)."""
    return {
        group: np.array(
            [demo_measures(group, seed, age)["ventricle_area_mm2"] for seed, age in enumerate(AGES)]
        )
        for group in ("CN", "AD")
    }


def _slope(ages: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope of values on age and its 95% interval."""
    fit = sps.linregress(ages, values)
    half = sps.t.ppf(0.975, len(ages) - 2) * fit.stderr
    return fit.slope, fit.slope - half, fit.slope + half


def test_ventricles_grow_with_age(ventricles):
    slope, low, high = _slope(AGES, ventricles["CN"])
    print(f"CN ventricle area on age: {slope:.2f} mm2/year [{low:.2f}, {high:.2f}]")
    assert low > 0, (slope, low, high)


def test_ventricles_grow_faster_with_age_in_ad(ventricles):
    cn, ad = _slope(AGES, ventricles["CN"]), _slope(AGES, ventricles["AD"])
    print(f"AD ventricle area on age: {ad[0]:.2f} mm2/year [{ad[1]:.2f}, {ad[2]:.2f}]")
    assert ad[0] > cn[0] and ad[1] > 0, (ad, cn)
    assert np.all(ventricles["AD"] > ventricles["CN"])  # same seed and age: AD's are larger


def test_shuffled_ages_show_no_slope(ventricles):
    assert abs(np.corrcoef(AGES, AGES[SHUFFLE])[0, 1]) < 0.3  # a real shuffle, not near identity
    slope, low, high = _slope(AGES[SHUFFLE], ventricles["CN"])
    print(f"CN ventricle area on shuffled age: {slope:.2f} mm2/year [{low:.2f}, {high:.2f}]")
    assert low < 0 < high, (slope, low, high)


def test_men_have_larger_brain_slices_than_women_of_the_same_age():
    areas = {
        sex: np.array([demo_measures("CN", seed, SEX_AGE, sex)["brain_area_mm2"] for seed in seeds])
        for sex, seeds in [("F", range(20, 24)), ("M", range(30, 34))]
    }
    ratio = areas["M"].mean() / areas["F"].mean()
    print(f"brain area: F {areas['F']}, M {areas['M']}, M / F {ratio:.4f}")
    assert ratio == pytest.approx((SEX_SCALE["M"] / SEX_SCALE["F"]) ** 2, rel=0.02)  # 1.128
    # These slices have no pose, deformation or head-size variation, so brain area is the same
    # for every subject of a sex and Welch's interval would be a point: see test_synth's 3-D
    # test for an interval over synthesized scans. Here: every man above every woman.
    assert areas["M"].min() > areas["F"].max()
