"""The bandwidth of the class KDEs (brainmr.evaluate.judges.kde) on their KDE coordinates.

The "misclassified (likelihood)" verdict compares log-likelihoods across the two KDEs, so it must
not hinge on how each KDE was tuned:

- cfg.bandwidth set: that bandwidth (KDE-space units) for both classes.
- bandwidth_rule "shared" (default): one bandwidth for both classes, maximising the exact
  leave-one-out log-likelihood of the pooled training coordinates. Two bandwidths carry two
  different log-normalisers (d log h): with identical AD and CN data in 21 dimensions, one old
  grid step apart (0.5 vs 0.7 x scale) tilts 60-94% of points towards one class (tests/unit/
  test_bandwidth.py); with one shared bandwidth the fraction stays near one half.
- bandwidth_rule "per_class": each class its own leave-one-out optimum (the older behaviour).

The search is continuous (bounded Brent on log h, after a coarse log grid that brackets the
optimum) within cfg.bandwidth_bounds x the data scale; an optimum at a bound is logged as a
warning and recorded as ``at_bound``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from brainmr import GROUPS
from brainmr.evaluate.config import KdeConfig, check_kde_config
from brainmr.evaluate.judges.metrics import pairwise_sq_distances

log = logging.getLogger(__name__)
# An optimum within this fraction of the log-bandwidth interval of a bound counts as at the bound.
AT_BOUND_TOLERANCE = 0.01
# Coarse log grid that brackets the optimum before the bounded search refines it (guards Brent
# against a local optimum, e.g. the spike near h -> 0 that duplicated slices create).
BRACKET_POINTS = 17


def loo_objective(data: np.ndarray) -> Callable[[float], float]:
    """Mean leave-one-out log-likelihood of ``data`` under its own Gaussian KDE, as a function
    of log h (the distances are computed once, so each evaluation is one logsumexp)."""
    n, d = data.shape
    if n < 2:
        raise ValueError("leave-one-out needs at least 2 points")
    centred = data - data.mean(axis=0)  # translation-invariant; limits cancellation in d2
    d2 = pairwise_sq_distances(centred, centred)
    np.fill_diagonal(d2, np.inf)

    def mean_loo(log_h: float) -> float:
        h2 = np.exp(2.0 * log_h)
        norm = 0.5 * d * np.log(2.0 * np.pi * h2) + np.log(n - 1)
        return float(np.mean(logsumexp(-d2 / (2.0 * h2), axis=1)) - norm)

    return mean_loo


def leave_one_out_loglik(data: np.ndarray, bandwidth: float) -> float:
    """Mean leave-one-out log-likelihood of ``data`` under its own Gaussian KDE."""
    return loo_objective(data)(float(np.log(bandwidth)))


def data_scale(z: np.ndarray) -> float:
    """Root mean per-component variance: the unit the bandwidth bounds are expressed in."""
    return float(np.sqrt(np.mean(z.var(axis=0))))


def search_bandwidth(
    z: np.ndarray, bounds: list[float] | tuple[float, float]
) -> tuple[float, dict]:
    """Bandwidth maximising the leave-one-out log-likelihood of ``z`` over log h within
    ``bounds`` x the data scale: a coarse log grid brackets the optimum, bounded Brent refines."""
    lo_mult, hi_mult = (float(b) for b in bounds)
    if not 0 < lo_mult < hi_mult:
        raise ValueError(f"bandwidth_bounds must be 0 < low < high, got {list(bounds)}")
    scale = data_scale(z)
    if scale <= 0:
        raise ValueError("all training slices are identical in KDE space: no bandwidth to fit")
    objective = loo_objective(z)
    lo, hi = np.log(lo_mult * scale), np.log(hi_mult * scale)
    grid = np.linspace(lo, hi, BRACKET_POINTS)
    best = int(np.argmax([objective(t) for t in grid]))
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    result = minimize_scalar(
        lambda t: -objective(t), bounds=bracket, method="bounded", options={"xatol": 1e-4}
    )
    log_h = float(result.x)
    width = hi - lo
    side = "lower" if log_h - lo <= AT_BOUND_TOLERANCE * width else None
    side = "upper" if hi - log_h <= AT_BOUND_TOLERANCE * width else side
    h = float(np.exp(log_h))
    if side is not None:
        log.warning(
            "KDE bandwidth %.4g (%.4g x scale) is at the %s search bound: widen bandwidth_bounds",
            h,
            h / scale,
            side,
        )
    info = {
        "method": "leave-one-out log-likelihood, bounded search on log h",
        "n": int(len(z)),
        "scale": scale,
        "bounds": [float(lo_mult * scale), float(hi_mult * scale)],
        "bandwidth": h,
        "bandwidth_over_scale": h / scale,
        "loo_loglik": -float(result.fun),
        "at_bound": side is not None,
        "bound_side": side,
    }
    return h, info


def effective_rule(cfg: KdeConfig) -> str:
    """The bandwidth rule in force: "fixed" when cfg.bandwidth overrides the search."""
    return "fixed" if cfg.bandwidth is not None else cfg.bandwidth_rule


def choose_bandwidths(
    z: np.ndarray, groups: np.ndarray, cfg: KdeConfig
) -> tuple[dict[str, float], dict[str, dict]]:
    """Each class's bandwidth and how it was chosen (``selection[group]``; the shared rule's
    single search is recorded under both classes)."""
    check_kde_config(cfg)
    groups = np.asarray(groups)
    if cfg.bandwidth is not None:
        h = float(cfg.bandwidth)
        info = {"method": "fixed (cfg.bandwidth, KDE-space units)", "at_bound": False}
        return {g: h for g in GROUPS}, {g: dict(info) for g in GROUPS}
    if cfg.bandwidth_rule == "shared":
        pooled = np.isin(groups, GROUPS)
        h, info = search_bandwidth(z[pooled], cfg.bandwidth_bounds)
        return {g: h for g in GROUPS}, {g: info | {"pooled": True} for g in GROUPS}
    bandwidths, selection = {}, {}
    for g in GROUPS:
        bandwidths[g], info = search_bandwidth(z[groups == g], cfg.bandwidth_bounds)
        selection[g] = info | {"pooled": False}
    return bandwidths, selection
