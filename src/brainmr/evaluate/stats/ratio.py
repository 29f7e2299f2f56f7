"""The ratio of two independent estimates with Fieller's interval: the share of the real AD-CN
difference that a generated set reproduces (brainmr.evaluate.table1.differences)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from brainmr.evaluate.stats.intervals import NAN, check_confidence


def fieller_ratio(
    numerator: float,
    numerator_var: float,
    numerator_df: float,
    denominator: float,
    denominator_var: float,
    denominator_df: float,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Ratio of two independent estimates (e.g. a generated AD-CN difference over the real one)
    with Fieller's interval: the set of ratios t with (num - t den)^2 <= q^2 (var_num + t^2
    var_den). q is Cochran and Cox's critical value, the Student-t quantiles of the two
    estimates' df weighted by their shares of that variance (at the point ratio): with 3 seeds
    the numerator's 2 df dominate, where a Welch-Satterthwaite df undercovers (92% measured at
    the paper's sizes, bench/calibration.py) and this errs on the safe side. Unlike dividing by
    the denominator as if exact, the interval widens as the denominator nears 0, and it is
    bounded only when the denominator is distinguishable from 0 at this level. Returns ratio,
    low, high and established (False: unbounded, everything nan)."""
    confidence = check_confidence(confidence)
    g, r, vg, vr = (float(v) for v in (numerator, denominator, numerator_var, denominator_var))
    out: dict[str, Any] = {"ratio": NAN, "low": NAN, "high": NAN, "established": False}
    if not all(np.isfinite(v) for v in (g, r, vg, vr)) or r == 0 or vg < 0 or vr < 0:
        return out
    theta = g / r
    spread = vg + theta**2 * vr
    if spread <= 0:
        return out
    tail = 0.5 + confidence / 2
    parts = [(vg, numerator_df), (theta**2 * vr, denominator_df)]
    q = sum(w * float(sps.t.ppf(tail, df)) for w, df in parts if w > 0) / spread
    if not np.isfinite(q):
        return out
    a = r * r - q * q * vr
    if a <= 0:  # the denominator's interval holds 0: the ratio is unbounded
        return out
    half = q * math.sqrt(g * g * vr + r * r * vg - q * q * vg * vr)
    return out | {
        "ratio": theta,
        "low": (g * r - half) / a,
        "high": (g * r + half) / a,
        "established": True,
    }
