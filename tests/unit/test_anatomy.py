"""brainmr.cohort.anatomy: the template head's boxes and a subject's canvas, whose age edits
widen the ventricles (faster in AD) and draw no random number."""

from __future__ import annotations

import numpy as np
import pytest

from brainmr.cohort.anatomy import (
    AGE_VENTRICLE_MM_PER_YEAR,
    CSF,
    _bbox,
    subject_canvas,
    template_anatomy,
)


@pytest.mark.parametrize("margin", [0, 2, 6])
def test_bbox_is_the_box_of_the_true_voxels_plus_margin_clipped(margin):
    rng = np.random.default_rng(margin)
    mask = np.zeros((30, 40, 50), dtype=bool)
    mask[3:9, 20:39, 10:47] = rng.random((6, 19, 37)) > 0.5  # near the edges: clipped
    index = np.argwhere(mask)
    lo = np.maximum(index.min(0) - margin, 0)
    hi = np.minimum(index.max(0) + margin + 1, mask.shape)
    expected = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    assert _bbox(mask, margin) == expected


def _canvas(seed: int, atrophy: float, age: float | None) -> tuple[np.ndarray, np.ndarray]:
    """A subject's canvas and the generator's state after it (the draws it consumed)."""
    rng = np.random.default_rng(seed)
    canvas, _ = subject_canvas(template_anatomy(), rng, atrophy, age)
    return canvas, rng.random(4)


def _ventricle_csf(canvas: np.ndarray) -> int:
    """Voxels (1 mm3) around the ventricles that are CSF-dark (below the tissue threshold)."""
    return int(np.count_nonzero(canvas.reshape(-1)[template_anatomy().ventricles.index] < 0.4))


def test_age_widens_the_ventricles_faster_in_ad_and_draws_no_random_numbers():
    cn = {age: _canvas(5, 0.0, age) for age in (None, 40, 60, 62, 85)}
    ad = {age: _canvas(5, 1.0, age) for age in (62, 85)}
    after = cn[None][1]
    assert all(np.array_equal(state, after) for _, state in [*cn.values(), *ad.values()])
    # edits only add CSF: at or below the reference age the head is the ageless one
    assert np.array_equal(cn[40][0], cn[None][0]) and np.array_equal(cn[60][0], cn[None][0])
    grown_cn = _ventricle_csf(cn[85][0]) - _ventricle_csf(cn[62][0])
    grown_ad = _ventricle_csf(ad[85][0]) - _ventricle_csf(ad[62][0])
    # 23 years: 1.15 mm more reach (CN), 1.7 mm (AD); the ventricles' surface is ~10^4 mm2
    assert 23 * AGE_VENTRICLE_MM_PER_YEAR == pytest.approx(1.15)
    print(f"ventricle CSF voxels, 62 -> 85 years: CN +{grown_cn}, AD +{grown_ad}")
    assert grown_cn > 8000 and grown_ad > 1.4 * grown_cn, (grown_cn, grown_ad)
    # age only turns tissue into CSF: nothing gets brighter
    assert np.all(cn[85][0] <= np.maximum(cn[62][0], CSF) + 1e-6)
