"""brainmr.evaluate.judges.metrics: the brain mask, nearest neighbours inside it, and the set
metrics
(KID, Frechet distance, precision/recall/density/coverage), checked against known answers and
independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg

from brainmr.evaluate.judges.metrics import (
    brain_mask,
    frechet_distance,
    kid,
    masked_nearest_neighbours,
    prdc,
)

# --- nearest neighbours inside the brain --------------------------------------------------


def brain_images(rng: np.random.Generator, n: int, side: int = 32, brain: int = 8) -> np.ndarray:
    images = np.zeros((n, side, side))
    lo = (side - brain) // 2
    images[:, lo : lo + brain, lo : lo + brain] = rng.uniform(0.5, 1.0, (n, brain, brain))
    return images.reshape(n, -1)


def test_brain_mask() -> None:
    rows = np.zeros((4, 5))
    rows[:, 1] = 0.8  # always brain
    rows[:2, 2] = 0.8  # brain in half the slices
    rows[:1, 3] = 0.8  # brain in one slice
    assert brain_mask(rows).tolist() == [False, True, True, False, False]
    assert brain_mask(rows, min_fraction=0.75).tolist() == [False, True, False, False, False]


def test_masked_nearest_neighbours_ignores_background() -> None:
    rng = np.random.default_rng(0)
    reference = brain_images(rng, 6)
    query = np.vstack([brain_images(rng, 1), reference[2], np.zeros(reference.shape[1])])
    unmasked = np.corrcoef(query[0], reference)[0, 1:]
    assert unmasked.min() > 0.9  # the shared background alone makes them look alike
    mask = brain_mask(reference)
    assert mask.sum() == 64
    index, corr = masked_nearest_neighbours(query, reference, mask)
    expected = np.corrcoef(query[0, mask], reference[:, mask])[0, 1:]
    assert corr[0] == pytest.approx(expected.max(), abs=1e-5)
    assert index[0] == np.argmax(expected)
    assert corr[0] < 0.6  # independent textures inside the brain
    assert index[1] == 2 and corr[1] == pytest.approx(1.0, abs=1e-6)  # an exact copy
    assert corr[2] == 0.0  # a flat row
    assert corr.dtype == np.float64


def test_masked_nearest_neighbours_chunks_agree() -> None:
    rng = np.random.default_rng(1)
    reference, query = brain_images(rng, 9), brain_images(rng, 7)
    mask = brain_mask(reference)
    whole = masked_nearest_neighbours(query, reference, mask)
    chunked = masked_nearest_neighbours(query, reference, mask, chunk=3)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1], atol=1e-6)


# --- KID ----------------------------------------------------------------------------------


def kid_double_loop(a: np.ndarray, b: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    d = a.shape[1]

    def kernel(x: np.ndarray, y: np.ndarray) -> float:
        return (float(np.dot(x, y)) / d + coef0) ** degree

    m, n = len(a), len(b)
    xx = sum(kernel(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(kernel(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_double_loop() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(7, 3))
    assert kid(a, b) == pytest.approx(kid_double_loop(a, b), rel=1e-10)
    c = rng.normal(size=(5, 3))
    assert kid(a, c, degree=2, coef0=0.5) == pytest.approx(kid_double_loop(a, c, 2, 0.5))


def test_kid_same_distribution_near_zero_shift_positive() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    shifted = rng.normal(1.0, 1.0, size=(100, 16))
    same, moved = kid(a, b), kid(a, shifted)
    assert abs(same) < 0.05
    assert moved > 1.0
    assert moved > 20 * abs(same)
    assert math.isnan(kid(a[:1], b))


# --- Frechet distance and PRDC ------------------------------------------------------------


def test_frechet_distance_unequal_covariances_against_sqrtm() -> None:
    rng = np.random.default_rng(0)
    mix_a = np.array(
        [[1.0, 0.3, 0.0, 0.2], [0.0, 2.0, 0.5, 0.0], [0.0, 0.0, 0.7, 0.1], [0, 0, 0, 1.5]]
    )
    mix_b = np.array(
        [[0.5, 0.0, 0.0, 0.0], [0.4, 1.0, 0.0, 0.0], [0.0, 0.8, 3.0, 0.0], [1, 0, 0, 0.3]]
    )
    a = rng.normal(size=(400, 4)) @ mix_a
    b = rng.normal(size=(300, 4)) @ mix_b + np.array([1.0, -0.5, 0.0, 2.0])
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(
        np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    )
    assert expected > 5.0
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_gaussians_closed_form() -> None:
    # Population FD of N(0, I) and N(m, 4 I) in d dims: |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20_000, 3))
    b = rng.normal([1.0, 0.0, 2.0], 2.0, size=(20_000, 3))
    assert frechet_distance(a, b) == pytest.approx(5.0 + 3.0, rel=0.03)


def on_line(xs: list[float]) -> np.ndarray:
    return np.array([[x, 0.0] for x in xs])


def test_prdc_hand_computed_example() -> None:
    # k = 1. Real radii (distance to the nearest other real): 0->1, 1->1, 3->2, 10->2, 12->2.
    # Fake radii: 0.5->4, 4.5->1, 5.5->1, 40->1, 41->1.
    # Real balls holding a fake: 0.5 in {0, 1}, 4.5 in {3}; none for 5.5, 40, 41.
    #   precision = 2/5 fakes in a real ball; density = (2 + 1) / (1 * 5) = 0.6
    #   coverage: nearest fake of 0, 1, 3 is inside their ball (0.5, 0.5, 1.5), not for 10, 12
    #   recall: reals 0, 1, 3 within 4 of fake 0.5; 10 and 12 in no fake ball -> 3/5
    real, fake = on_line([0, 1, 3, 10, 12]), on_line([0.5, 4.5, 5.5, 40, 41])
    out = prdc(real, fake, k=1)
    assert out["k"] == 1
    assert out["precision"] == pytest.approx(0.4)
    assert out["recall"] == pytest.approx(0.6)
    assert out["density"] == pytest.approx(0.6)
    assert out["coverage"] == pytest.approx(0.6)
    # Balls are open (as in Naeem et al.'s code): a fake exactly on a ball's edge is outside.
    edge = prdc(real, on_line([-1.0, 5.0]), k=1)  # -1 is 1 from 0 (radius 1); 5 is 2 from 3
    assert edge["precision"] == 0.0 and edge["density"] == 0.0 and edge["coverage"] == 0.0


def test_prdc_partial_overlap() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 4))
    fake = rng.normal(size=(300, 4)) + np.array([1.5, 0, 0, 0])
    out = prdc(real, fake, k=5)
    for key in ("precision", "recall", "coverage"):
        assert 0.0 < out[key] < 1.0, key
    assert 0.0 < out["density"] < 1.0  # fewer fakes in real balls than for a matching set
    same = prdc(real, rng.normal(size=(300, 4)), k=5)
    assert same["density"] > out["density"] and same["coverage"] > out["coverage"]
    assert 0.8 < same["density"] < 1.2  # about 1 when the distributions match
    assert prdc(real, fake, k=1000)["k"] == 299  # k capped at n - 1


def test_prdc_and_frechet_identical_sets():
    x = np.random.default_rng(0).normal(size=(60, 8))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    scores = prdc(x, x.copy(), k=5)
    assert scores["precision"] == 1 and scores["recall"] == 1 and scores["coverage"] == 1


def test_prdc_and_frechet_disjoint_and_shifted_sets():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(80, 6)), rng.normal(size=(80, 6)) + 50
    scores = prdc(real, fake, k=5)
    assert scores["precision"] == 0 and scores["recall"] == 0 and scores["coverage"] == 0
    assert scores["density"] == 0
    # same samples shifted: FD is exactly the squared shift
    shift = np.array([3.0, 0, 0, 4.0, 0, 0])
    assert frechet_distance(real, real + shift) == pytest.approx(25.0)


def test_prdc_caps_k_for_small_sets():
    rng = np.random.default_rng(2)
    scores = prdc(rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), k=5)
    assert scores["k"] == 2 and np.isfinite(scores["recall"])
    assert np.isnan(prdc(rng.normal(size=(1, 4)), rng.normal(size=(5, 4)), k=5)["precision"])
    assert np.isnan(frechet_distance(rng.normal(size=(1, 4)), rng.normal(size=(5, 4))))
