"""brainmr.evaluate.judges.bandwidth: the leave-one-out objective, the continuous search and the
bandwidth rules, and why the verdict needs one shared bandwidth (synthetic Gaussians in KDE
coordinates, so the right answer is known)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, LeaveOneOut
from sklearn.neighbors import KernelDensity
from toy_evaluation import direct_loglik, identical_classes, kde_config, prefer_cn

from brainmr.evaluate.judges.bandwidth import (
    data_scale,
    leave_one_out_loglik,
    loo_objective,
    search_bandwidth,
)
from brainmr.evaluate.judges.kde import fit_class_densities, fit_densities, fit_kde_model

# The old per-class rule's grid (bandwidth_grid x the class's own scale), for the regression.
OLD_GRID = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]


def old_grid_bandwidth(zg: np.ndarray) -> float:
    """The removed per-class rule: best of OLD_GRID x the class's own scale."""
    scale = data_scale(zg)
    return max((g * scale for g in OLD_GRID), key=lambda h: leave_one_out_loglik(zg, h))


# ---------------------------------------------------------------- the grid problem


def test_shared_bandwidth_keeps_identical_classes_at_chance_where_a_grid_step_does_not():
    # Paper-like sizes: 21 KDE dimensions (20 PCA scores + residual), 240 AD vs 320 CN.
    z, groups, z_test = identical_classes(seed=0, n_ad=240, n_cn=320, d=21)
    densities, bandwidths, selection = fit_class_densities(z, groups, kde_config())
    assert bandwidths["AD"] == bandwidths["CN"]
    assert selection["AD"]["pooled"] and not selection["AD"]["at_bound"]
    # Tolerance: 2000 test points give a binomial sd of ~0.011, but the estimator's own sampling
    # variance dominates; measured over seeds 0-5 the fraction was 0.52-0.55 (the 320-point KDE is
    # slightly favoured: its log-density is less biased downwards, see the balance test), so
    # |f - 0.5| < 0.1 leaves room for that and still fails on a one-grid-step mismatch (below).
    assert abs(prefer_cn(densities, z_test) - 0.5) < 0.1
    # One old grid step apart (0.5 vs 0.7 x scale) the normalisers differ by 21 log(0.7/0.5)
    # nats and the verdict follows the bandwidth, not the data (measured: 0.94 and 0.07).
    scale = data_scale(z)
    narrow_ad = fit_densities(z, groups, {"AD": 0.5 * scale, "CN": 0.7 * scale})
    narrow_cn = fit_densities(z, groups, {"AD": 0.7 * scale, "CN": 0.5 * scale})
    assert prefer_cn(narrow_ad, z_test) > 0.65
    assert prefer_cn(narrow_cn, z_test) < 0.35


def test_old_per_class_grid_flips_the_verdict_on_data_where_the_shared_rule_does_not():
    # A decaying PCA-like spectrum puts the LOO optimum near 0.6 x scale, between two grid steps:
    # there the old per-class grid lands AD on 0.7 and CN on 0.5 (asserted, so the regression
    # is real), and the verdict leaves chance by more than the shared rule's tolerance.
    sd = np.arange(1, 22) ** -0.85
    z, groups, z_test = identical_classes(seed=3, n_ad=240, n_cn=320, d=21, sd=sd)
    old = {g: old_grid_bandwidth(z[groups == g]) for g in ("AD", "CN")}
    steps = {g: round(h / data_scale(z[groups == g]), 3) for g, h in old.items()}
    assert steps == {"AD": 0.7, "CN": 0.5}
    assert abs(prefer_cn(fit_densities(z, groups, old), z_test) - 0.5) > 0.15  # measured 0.67
    shared, _, _ = fit_class_densities(z, groups, kde_config())
    assert abs(prefer_cn(shared, z_test) - 0.5) < 0.1  # measured 0.55


# ---------------------------------------------------------------- search


def test_kde_cross_validated_bandwidth_matches_sklearn_leave_one_out():
    rng = np.random.default_rng(1)
    pixels = np.concatenate([rng.normal(0, 1, (12, 40)), rng.normal(0.5, 2, (15, 40))])
    groups = np.array(["AD"] * 12 + ["CN"] * 15)
    for rule in ("shared", "per_class"):
        model = fit_kde_model(pixels, groups, kde_config(pca_components=3, bandwidth_rule=rule))
        z = model.project(pixels)
        for group in ("AD", "CN"):
            # shared: one search on the pooled coordinates; per_class: on the class's own.
            zg = z if rule == "shared" else z[groups == group]
            h = model.bandwidths[group]
            # sklearn's own leave-one-out score prefers the continuous optimum to its neighbours.
            grid = {"bandwidth": [h * f for f in (0.8, 0.9, 0.97, 1.0, 1.03, 1.1, 1.25)]}
            search = GridSearchCV(KernelDensity(kernel="gaussian"), grid, cv=LeaveOneOut()).fit(zg)
            assert search.best_params_["bandwidth"] == pytest.approx(h)
        if rule == "shared":
            assert model.bandwidths["AD"] == model.bandwidths["CN"]


def test_continuous_search_matches_a_brute_force_fine_grid():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(150, 6)) * np.array([3.0, 2.0, 1.0, 1.0, 0.5, 0.2])
    bounds = [0.02, 5.0]
    h, info = search_bandwidth(z, bounds)
    scale = data_scale(z)
    grid = np.geomspace(bounds[0] * scale, bounds[1] * scale, 600)  # steps of 0.9%
    brute = grid[np.argmax([leave_one_out_loglik(z, g) for g in grid])]
    assert h == pytest.approx(brute, rel=0.02)
    assert info["loo_loglik"] >= leave_one_out_loglik(z, brute) - 1e-9
    assert not info["at_bound"] and info["bound_side"] is None


def test_leave_one_out_matches_a_direct_computation():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(20, 3))
    h = 0.7
    expected = np.mean(
        [direct_loglik(z[i : i + 1], np.delete(z, i, axis=0), h)[0] for i in range(len(z))]
    )
    assert leave_one_out_loglik(z, h) == pytest.approx(expected, rel=1e-10)
    assert loo_objective(z)(np.log(h)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("bounds", "side"), [([2.0, 5.0], "lower"), ([0.02, 0.1], "upper")])
def test_an_optimum_at_a_search_bound_warns_and_is_recorded(caplog, bounds, side):
    # The LOO optimum of a standard normal sample in 4-D lies near 0.6 x scale, outside both.
    z, groups, _ = identical_classes(seed=6, n_ad=60, n_cn=60, d=4)
    with caplog.at_level(logging.WARNING, logger="brainmr.evaluate.judges.bandwidth"):
        _, bandwidths, selection = fit_class_densities(
            z, groups, kde_config(bandwidth_bounds=bounds)
        )
    assert selection["AD"]["at_bound"] and selection["AD"]["bound_side"] == side
    assert any("search bound" in r.getMessage() for r in caplog.records)
    scale = data_scale(z)
    limit = bounds[0] if side == "lower" else bounds[1]
    assert bandwidths["AD"] == pytest.approx(limit * scale, rel=0.01)


# ---------------------------------------------------------------- rules


def test_per_class_and_fixed_rules():
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.normal(size=(50, 3)), 3 * rng.normal(size=(70, 3))])
    groups = np.array(["AD"] * 50 + ["CN"] * 70)
    _, bandwidths, selection = fit_class_densities(
        z, groups, kde_config(bandwidth_rule="per_class")
    )
    for g in ("AD", "CN"):
        assert bandwidths[g] == pytest.approx(search_bandwidth(z[groups == g], [0.02, 5.0])[0])
        assert not selection[g]["pooled"]
    assert bandwidths["CN"] > 2 * bandwidths["AD"]  # each class its own scale
    _, fixed, _ = fit_class_densities(
        z, groups, kde_config(bandwidth=0.9, bandwidth_rule="per_class")
    )
    assert fixed == {"AD": 0.9, "CN": 0.9}
    with pytest.raises(ValueError, match="bandwidth_rule"):
        fit_class_densities(z, groups, kde_config(bandwidth_rule="grid"))
