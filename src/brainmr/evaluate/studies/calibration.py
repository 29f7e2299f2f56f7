"""Calibration of the judges and intervals by simulation, with answers known by construction.

Every judge and interval that a table prints is run, through the package's own functions, on
Monte-Carlo cases at a given scale (the demo's or the paper's cohort, split, images per set and
seeds), and its achieved figure (coverage, flag rate, type-I error, power) is set beside the
nominal one with a Monte-Carlo interval (Wilson over the replicates). A row passes when its
Monte-Carlo interval does not contradict the goal: a coverage whose interval reaches within 2
points of nominal, a rate that should be small whose interval reaches below it, and so on.
``bench/calibration.py`` prints the table; tests run it with few replicates.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from brainmr import GROUPS
from brainmr.config import stage_config
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.judges.sets import GuardSet, guard_verdict, pooled_guard
from brainmr.evaluate.stats.intervals import (
    PROPORTION,
    accuracy_interval,
    correlation_interval,
    mean_interval,
)
from brainmr.evaluate.stats.ratio import fieller_ratio
from brainmr.evaluate.stats.tests import detectable_noncentrality, paired_seed_test
from brainmr.evaluate.studies.calibration_scale import (  # noqa: F401
    Scale,
    calibration_row,
    scale_from_config,
)
from brainmr.evaluate.studies.following import follow_figures
from brainmr.evaluate.table1.findings import judge_separation
from brainmr.evaluate.table1.replicates import FEW_PER_SEED

D = 16  # feature dimension of the guard's cases; the classes lie 2 apart on one axis
FEW_PER_SEED_LIMIT = (
    "about 1 image per seed: 3 seeds cannot estimate the spread of counts this small; the "
    "summary marks such cells (‡) and the pooled Wilson figure beside them is the one to read"
)


def guard_rows(scale: Scale, reps: int, draws: int, seed: int = 0) -> list[dict]:
    """How often the guard flags faithful sets of either class, an AD set made of CN-like
    images (should pass: real brains), and broken sets (blurred, one image repeated, wide
    noise, junk far from every real), with the scale's unseen reals (held-out + validation)."""
    counts = scale.split_counts()
    unseen_n = {g: counts["test"][g] + counts["val"][g] for g in GROUPS}
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=draws)
    rng = np.random.default_rng(seed)
    mean = {"AD": np.r_[2.0, np.zeros(D - 1)], "CN": np.zeros(D)}

    def draw(group: str, n: int) -> np.ndarray:
        return rng.normal(size=(n, D)) + mean[group]

    cases = {  # name -> (should be flagged, set maker)
        "faithful AD set": (False, lambda n: GuardSet(draw("AD", n), "AD")),
        "faithful CN set": (False, lambda n: GuardSet(draw("CN", n), "CN")),
        "AD set of CN-like brains": (False, lambda n: GuardSet(draw("CN", n), "AD")),
        "blurred AD set": (
            True,
            lambda n: GuardSet(mean["AD"] + 0.3 * (draw("AD", n) - mean["AD"]), "AD"),
        ),
        "one image repeated": (True, lambda n: GuardSet(np.repeat(draw("AD", 1), n, 0), "AD")),
        "wide noise": (True, lambda n: GuardSet(rng.normal(scale=4.0, size=(n, D)), "CN")),
        "junk far from every real": (True, lambda n: GuardSet(draw("AD", n) + 6.0, "AD")),
    }
    flagged = dict.fromkeys(cases, 0)
    for _ in range(reps):
        unseen = np.concatenate([draw(g, unseen_n[g]) for g in GROUPS])
        groups = np.concatenate([[g] * unseen_n[g] for g in GROUPS])
        sets = {name: make(scale.n_images) for name, (_, make) in cases.items()}
        cfg = stage_config(
            JudgeConfig, "evaluate", matched_draws=draws, seed=int(rng.integers(1 << 30))
        )
        figures = pooled_guard(unseen, groups, np.arange(len(unseen)), sets, cfg)
        for name, values in figures.items():
            flagged[name] += guard_verdict(values, cfg.ood_fraction)[0]
    note = f"{unseen_n['AD']} AD + {unseen_n['CN']} CN unseen reals, {draws} draws"
    return [
        calibration_row(
            scale,
            "guard",
            f"{name} flagged",
            flagged[name],
            reps,
            math.nan,
            ("at least", 0.95) if bad else ("at most", 0.05),
            note,
        )
        for name, (bad, _) in cases.items()
    ]


def seed_fraction_rows(scale: Scale, reps: int, seed: int = 0) -> list[dict]:
    """Coverage of the seed-level t interval of a share (mean of per-seed fractions, bounded to
    [0, 1]) of the expected share, per-seed shares varying between models (logit sd 0.3) and
    binomial within a seed."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in (0.01, 0.05, 0.3):
        seed_p = expit(logit(p) + rng.normal(0, 0.3, size=(reps, scale.n_seeds)))
        target = float(np.mean(expit(logit(p) + rng.normal(0, 0.3, size=200_000))))
        k = rng.binomial(scale.n_images, seed_p)
        hits = 0
        for row in k / scale.n_images:
            out = mean_interval(row, bounds=PROPORTION)
            hits += out["low"] <= target <= out["high"]
        rows.append(
            calibration_row(
                scale,
                "seed-level t interval",
                f"share called AD, p = {p}",
                hits,
                reps,
                0.95,
                ("cover", 0.95),
                f"{scale.n_seeds} seeds x {scale.n_images} images",
                FEW_PER_SEED_LIMIT if p * scale.n_images < FEW_PER_SEED else "",
            )
        )
    return rows


def fraction_rows(scale: Scale, reps: int, seed: int = 0) -> list[dict]:
    """Coverage of the share of the real AD - CN difference reproduced (true 0.5), by Fieller's
    interval where the real difference is established, at a real difference of 1 and of 2.5
    subject sd; beside it, the former interval that took the held-out difference as exact."""
    counts = scale.split_counts()["test"]
    rng = np.random.default_rng(seed)
    rows = []
    for effect in (1.0, 2.5):
        hits = former = established = 0
        for _ in range(reps):
            ad, cn = rng.normal(effect, 1.0, counts["AD"]), rng.normal(0.0, 1.0, counts["CN"])
            va, vc = ad.var(ddof=1) / ad.size, cn.var(ddof=1) / cn.size
            var_r = va + vc
            df_r = var_r**2 / (va**2 / (ad.size - 1) + vc**2 / (cn.size - 1))
            # each seed's generated difference: half the real one, model and image noise
            seeds = effect * (0.5 + rng.normal(0, 0.15, scale.n_seeds))
            seeds += rng.normal(0, math.sqrt(2 / scale.n_images), scale.n_seeds)
            real = ad.mean() - cn.mean()
            old = mean_interval(seeds / real)
            former += old["low"] <= 0.5 <= old["high"]
            out = fieller_ratio(
                seeds.mean(), seeds.var(ddof=1) / seeds.size, seeds.size - 1, real, var_r, df_r
            )
            if out["established"]:
                established += 1
                hits += out["low"] <= 0.5 <= out["high"]
        note = (
            f"real difference {effect} sd, {counts['AD']} AD / {counts['CN']} CN held-out; "
            f"established in {established}/{reps}"
        )
        rows += [
            calibration_row(
                scale,
                "fraction reproduced",
                f"Fieller, real difference {effect} sd",
                hits,
                established,
                0.95,
                ("cover", 0.95),
                note,
            ),
            calibration_row(
                scale,
                "fraction reproduced",
                f"former (exact denominator), {effect} sd",
                former,
                reps,
                0.95,
                ("for comparison", math.nan),
                "the interval printed before Fieller's",
            ),
        ]
    return rows


def accuracy_rows(scale: Scale, reps: int, seed: int = 0) -> list[dict]:
    """Coverage of the Wilson interval of an accuracy over the held-out reals (true 0.8)."""
    n = sum(scale.split_counts()["test"].values())
    rng = np.random.default_rng(seed)
    hits = 0
    for k in rng.binomial(n, 0.8, size=reps):
        low, high = accuracy_interval(int(k), n)
        hits += low <= 0.8 <= high
    return [
        calibration_row(
            scale,
            "Wilson",
            f"accuracy 0.8 of {n} held-out reals",
            hits,
            reps,
            0.95,
            ("cover", 0.95),
            "Wilson oscillates with n" if n < 30 else "",
        )
    ]


def age_rows(scale: Scale, reps: int, n_boot: int, seed: int = 0) -> list[dict]:
    """Coverage of the age judge's r (Fisher z), slope (t) and MAE (bootstrap) over one set of
    images, and of r across seeds (Fisher z of the seeds' r): requested ages 60-90, judged
    age = 20 + 0.7 age + N(0, 6)."""
    rng = np.random.default_rng(seed)
    big = rng.uniform(60, 90, 1_000_000)
    judged = 20 + 0.7 * big + rng.normal(0, 6, big.size)
    truth = {
        "r": float(np.corrcoef(big, judged)[0, 1]),
        "slope": 0.7,
        "mae": float(np.mean(np.abs(judged - big))),
    }
    hits = dict.fromkeys(("r", "slope", "mae", "r across seeds"), 0)
    sexes = np.array(["F", "M"] * (scale.n_images // 2) + ["F"] * (scale.n_images % 2))
    for _ in range(reps):
        rs = []
        for _ in range(scale.n_seeds):
            age = rng.uniform(60, 90, scale.n_images)
            out = follow_figures(
                age,
                20 + 0.7 * age + rng.normal(0, 6, age.size),
                sexes,
                np.full(age.size, 0.5),
                n_boot=n_boot,
                seed=int(rng.integers(1 << 30)),
            )
            rs.append(out["age_r"])
        for key, name in (("r", "age_r"), ("slope", "age_slope"), ("mae", "age_mae")):
            hits[key] += out[f"{name}_low"] <= truth[key] <= out[f"{name}_high"]
        across = correlation_interval(rs)
        hits["r across seeds"] += across["low"] <= truth["r"] <= across["high"]
    return [
        calibration_row(
            scale,
            "age judge",
            f"{key} ({scale.n_images} images)",
            hits[key],
            reps,
            0.95,
            ("cover", 0.95),
            "bootstrap percentile" if key == "mae" else "",
        )
        for key in hits
    ]


def seed_test_rows(scale: Scale, reps: int, seed: int = 0) -> list[dict]:
    """The paired seed test's type-I error at alpha 0.05 (two conditions alike, paired by the
    seed's shared CNN) and its power at the detectable difference it prints (for the true sd
    of the per-seed differences)."""
    rng = np.random.default_rng(seed)
    n, k = scale.n_images, scale.n_seeds

    def fractions(p: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
        cnn = rng.normal(0, 0.3, size=(reps, k))  # the seed's CNN, shared by both conditions
        a = expit(logit(p) + cnn + rng.normal(0, 0.2, size=(reps, k)))
        b = expit(logit(p) + cnn + rng.normal(0, 0.2, size=(reps, k))) + shift
        return rng.binomial(n, a) / n, rng.binomial(n, np.clip(b, 0, 1)) / n

    a, b = fractions(0.3, 0.0)
    sd = float(np.std(b - a, ddof=1))  # the true sd of the per-seed differences
    pvalues = np.array([paired_seed_test(x, y)["p_value"] for x, y in zip(a, b, strict=True)])
    type1 = int(np.sum(pvalues < 0.05))
    detectable = detectable_noncentrality(k - 1, 0.05, 0.8) * sd / math.sqrt(k)
    a, b = fractions(0.3, detectable)
    power = sum(paired_seed_test(x, y)["p_value"] < 0.05 for x, y in zip(a, b, strict=True))
    note = f"{k} seeds; detectable {detectable:.3f} at sd {sd:.3f}"
    return [
        calibration_row(
            scale,
            "paired seed test",
            "type-I error, alpha 0.05",
            type1,
            reps,
            0.05,
            ("at most", 0.05),
            note,
        ),
        calibration_row(
            scale,
            "paired seed test",
            "power at the printed detectable",
            power,
            reps,
            0.8,
            ("cover", 0.8),
            note,
        ),
    ]


def separation_rows(scale: Scale, reps: int, seed: int = 0) -> list[dict]:
    """How often the findings claim a judge "separates" AD from CN images when the truth is no
    difference (AD and CN sets drawn alike, per-seed model variation)."""
    rng = np.random.default_rng(seed)
    n, k = scale.n_images, scale.n_seeds
    claims = dict.fromkeys(("cnn", "likelihood", "morphometry"), 0)
    for _ in range(reps):
        rows, morph = [], []
        for s in range(k):
            for group in GROUPS:
                p_cnn = expit(logit(0.1) + rng.normal(0, 0.3))
                p_lik = expit(logit(0.5) + rng.normal(0, 0.3))
                called = rng.binomial(n, p_lik)
                rows.append(
                    {
                        "seed": s,
                        "condition": "c",
                        "group": group,
                        "n": n,
                        "predicted_AD": rng.binomial(n, p_cnn),
                        "cnn_interpretable": True,
                        "misclassified": n - called if group == "AD" else called,
                    }
                )
            morph.append(
                {
                    "measure": "ventricle_area_mm2",
                    "source": "c",
                    "seed": s,
                    "difference": rng.normal(0, 20),
                }
            )
        out = judge_separation(pd.DataFrame(rows), pd.DataFrame(morph), "c")
        for judge in claims:
            claims[judge] += out[judge]["separates"]
    return [
        calibration_row(
            scale,
            "findings",
            f"'{judge} separates' with no difference",
            claims[judge],
            reps,
            0.05,
            ("at most", 0.05),
        )
        for judge in claims
    ]


def calibrate(
    scales: list[Scale], reps: dict[str, int], guard_draws: int, n_boot: int
) -> pd.DataFrame:
    """Every calibration row at every scale. ``reps``: Monte-Carlo replicates per family
    (guard, intervals, age, tests)."""
    rows = []
    for scale in scales:
        rows += guard_rows(scale, reps["guard"], guard_draws)
        rows += seed_fraction_rows(scale, reps["intervals"])
        rows += fraction_rows(scale, reps["intervals"])
        rows += accuracy_rows(scale, reps["intervals"])
        rows += age_rows(scale, reps["age"], n_boot)
        rows += seed_test_rows(scale, reps["tests"])
        rows += separation_rows(scale, reps["tests"])
    return pd.DataFrame(rows)
