"""Does the model follow instructions beyond the class? Figures of how well generated images
match the age and sex their prompts asked for, read by the attribute judges
(brainmr.evaluate.studies.attributes) and by the morphometric judge, as Pinaya et al. 2022
correlated
measured volumes with the requested covariates.

Three kinds of rows make a figure readable: the judges on held-out reals against their true age
and sex (what a perfect generator could reach through these judges), the instructed sets, and a
shuffled baseline (a class-only model's images paired with permuted requests: what ignoring the
request looks like, r ~ 0). The seed is the unit across replicates: a seed's images share one
model, so across-seed rows are means of per-seed figures with a Student-t interval. Pure
functions (arrays or tables in, numbers or tables out); brainmr.report.instructions formats.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainmr import GROUPS, SEXES
from brainmr.evaluate.judges.morphometry import HELD_OUT
from brainmr.evaluate.stats.binary import THRESHOLD, bootstrap_binary_metrics
from brainmr.evaluate.stats.intervals import (
    PROPORTION,
    accuracy_interval,
    correlation_interval,
    mean_interval,
)
from brainmr.evaluate.table1.differences import class_difference
from brainmr.io import as_bool, require_columns, require_groups

NAN = math.nan
INSTRUCTED, SHUFFLED = "instructed", "shuffled baseline"
ROLES = (INSTRUCTED, SHUFFLED)
TRUE_ROLE = "true age and sex"  # the role of the calibration rows on held-out reals
GENERATED = "generated"
ACROSS = "all"  # the seed of across-seed rows
REQUEST_COLUMNS = ("requested_age", "requested_sex")
# Figures with a 95% interval each (<name>_low, <name>_high).
FIGURES = (
    "age_r",
    "age_slope",
    "age_mae",
    "sex_accuracy",
    "sex_auc",
    "ventricle_slope",
    "brain_area_M_minus_F",
)
FIGURE_BOUNDS = {"sex_accuracy": PROPORTION, "sex_auc": PROPORTION, "age_mae": (0.0, np.inf)}
# A judge that cannot read its attribute on the held-out reals says nothing of generated images.
# The age judge counts where its r there is at least MIN_AGE_R (a judge that explains under ~10%
# of the age variance cannot tell a 60- from an 80-year-old request) and above 0 with 95%
# confidence; the sex judge where its accuracy is above the majority sex's share with 95%
# confidence (an always-"M" judge scores that share) and its AUC's lower bound is above 0.5.
MIN_AGE_R = 0.3
TABLE_COLUMNS = [
    "source",
    "condition",
    "group",
    "role",
    "seed",
    "n",
    "n_outliers",
    "n_seeds",
    "seeds_used",
    "in_distribution",
    "headline",
    "age_judge_valid",
    "sex_judge_valid",
    *(f"{f}{s}" for f in FIGURES for s in ("", "_low", "_high")),
]
IMAGE_COLUMNS = [
    "seed",
    "condition",
    "group",
    "role",
    "requested_age",
    "requested_sex",
    "predicted_age",
    "prob_M",
    "brain_area_mm2",
    "ventricle_area_mm2",
    "outlier",
    "cnn_interpretable",
]
REAL_COLUMNS = [
    "group",
    "age",
    "sex",
    "predicted_age",
    "prob_M",
    "brain_area_mm2",
    "ventricle_area_mm2",
]


def _ages(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: {int((~np.isfinite(x)).sum())} missing or non-finite age(s)")
    return x


def _sexes(values, what: str) -> np.ndarray:
    s = np.asarray([str(v).strip() for v in np.asarray(values, dtype=object).ravel()])
    bad = sorted(set(s) - set(SEXES))
    if bad:
        raise ValueError(f"{what}: sex must be F or M, got {bad}")
    return s


def _slope(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Least-squares slope of y on x with its t interval; NaN when x is constant or n < 3
    (interval only), and for n < 2."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return NAN, NAN, NAN
    fit = sps.linregress(x, y)
    if x.size < 3:
        return float(fit.slope), NAN, NAN
    half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 2)) * float(fit.stderr)
    return float(fit.slope), float(fit.slope) - half, float(fit.slope) + half


def _pearson(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> tuple[float, ...]:
    """Pearson r with its Fisher z interval; NaN when either side is constant (interval: n < 4)."""
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return NAN, NAN, NAN
    result = sps.pearsonr(x, y)
    if x.size < 4:
        return float(result.statistic), NAN, NAN
    ci = result.confidence_interval(confidence)
    return float(result.statistic), float(ci.low), float(ci.high)


def follow_figures(
    requested_age, predicted_age, requested_sex, prob_M, n_boot: int = 2000, seed: int = 0
) -> dict:
    """How well judged ages and sexes follow the requested ones: Pearson r (Fisher z interval),
    slope of predicted on requested age (t interval; 1 = followed at full scale, 0 = ignored),
    mean absolute error in years (percentile bootstrap), sex accuracy against the request
    (P(M) >= 0.5 means M; Wilson), the sex judge's AUC against the request (bootstrap) and n.
    NaN where a figure is undefined (no images, a constant requested or predicted age, one
    sex requested)."""
    req = _ages(requested_age, "requested age")
    pred = _ages(predicted_age, "predicted age")
    sex = _sexes(requested_sex, "requested sex")
    prob = np.asarray(prob_M, dtype=float).ravel()
    if not (req.size == pred.size == sex.size == prob.size):
        raise ValueError(
            f"follow_figures: {req.size} requested ages, {pred.size} predicted ages, "
            f"{sex.size} requested sexes and {prob.size} P(M) are not aligned"
        )
    if not (np.isfinite(prob).all() and np.all((prob >= 0) & (prob <= 1))):
        raise ValueError("follow_figures: P(M) must be finite and in [0, 1]")
    out = {"n": int(req.size)}
    out |= dict(zip(("age_r", "age_r_low", "age_r_high"), _pearson(req, pred), strict=True))
    out |= dict(
        zip(("age_slope", "age_slope_low", "age_slope_high"), _slope(req, pred), strict=True)
    )
    errors = np.abs(pred - req)
    out |= dict.fromkeys(("age_mae", "age_mae_low", "age_mae_high"), NAN)
    out |= dict.fromkeys(("sex_accuracy", "sex_accuracy_low", "sex_accuracy_high"), NAN)
    out |= dict.fromkeys(("sex_auc", "sex_auc_low", "sex_auc_high"), NAN)
    if req.size == 0:
        return out
    rng = np.random.default_rng(seed)
    boot = errors[rng.integers(0, errors.size, size=(n_boot, errors.size))].mean(axis=1)
    out |= {"age_mae": float(errors.mean())}
    out["age_mae_low"], out["age_mae_high"] = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    correct = int(np.sum((prob >= THRESHOLD) == (sex == "M")))
    out["sex_accuracy"] = correct / sex.size
    out["sex_accuracy_low"], out["sex_accuracy_high"] = accuracy_interval(correct, sex.size)
    # AUC of P(M) against the requested sex (bootstrap interval; nan with one sex requested)
    auc = bootstrap_binary_metrics((sex == "M").astype(int), prob, n_boot=n_boot, seed=seed)
    out |= {"sex_auc": auc["auc"], "sex_auc_low": auc["auc_low"], "sex_auc_high": auc["auc_high"]}
    return out


def morphometry_following(requested_age, requested_sex, measures: pd.DataFrame) -> dict:
    """Anatomy against the request, with no learned judge in between: the slope of the
    ventricle area (mm² per year) on the requested age (t interval) and the M - F difference of
    brain area (mm², Welch interval). Images without a measure (NaN) are left out."""
    require_columns(measures, ["brain_area_mm2", "ventricle_area_mm2"], "morphometry")
    age = _ages(requested_age, "requested age")
    sex = _sexes(requested_sex, "requested sex")
    if not age.size == sex.size == len(measures):
        raise ValueError(
            f"morphometry_following: {age.size} ages, {sex.size} sexes and {len(measures)} "
            "measured images are not aligned"
        )
    ventricles = measures["ventricle_area_mm2"].to_numpy(float)
    brain = measures["brain_area_mm2"].to_numpy(float)
    names = ("ventricle_slope", "ventricle_slope_low", "ventricle_slope_high")
    out = dict(zip(names, _slope(age, ventricles), strict=True))
    diff = class_difference(brain[sex == "M"], brain[sex == "F"])
    return out | {
        "brain_area_M_minus_F": diff["difference"],
        "brain_area_M_minus_F_low": diff["low"],
        "brain_area_M_minus_F_high": diff["high"],
    }


def shuffled_requests(
    requests: pd.DataFrame, seed: int, columns: tuple[str, ...] = REQUEST_COLUMNS
) -> pd.DataFrame:
    """A copy of ``requests`` with the request columns permuted together (one fixed permutation
    of the rows from ``seed``), the rest untouched: each baseline image keeps a plausible
    age/sex pair, but one its model never saw, so ignoring the request shows as r ~ 0."""
    require_columns(requests, columns, "requests to shuffle")
    order = np.random.default_rng(seed).permutation(len(requests))
    out = requests.copy()
    for column in columns:
        out[column] = requests[column].to_numpy()[order]
    return out


def instructed_images(images: pd.DataFrame, seed) -> pd.DataFrame:
    """The rows of the images table that one seed's instructed sets keep: outliers left out."""
    kept = images[(images["role"] == INSTRUCTED) & ~as_bool(images["outlier"], "outlier")]
    return kept[kept["seed"].astype(str) == str(seed)]


def sex_confusion(requested_sex, prob_M) -> np.ndarray:
    """2x2 counts of requested against judged sex: rows requested F/M, columns judged F/M
    (P(M) >= THRESHOLD means M)."""
    judged = np.where(np.asarray(prob_M, dtype=float) >= THRESHOLD, "M", "F")
    requested = pd.Series(requested_sex).astype(str).str.strip().to_numpy()
    return np.array([[np.sum((requested == a) & (judged == b)) for b in SEXES] for a in SEXES])


def _figures(req_age, pred_age, req_sex, prob_m, measures, n_boot, seed) -> dict:
    out = follow_figures(req_age, pred_age, req_sex, prob_m, n_boot, seed)
    return out | morphometry_following(req_age, req_sex, measures)


def _row(**values) -> dict:
    return {c: NAN for c in TABLE_COLUMNS} | values


def _calibration_rows(reals: pd.DataFrame, n_boot: int, seed: int) -> list[dict]:
    rows = []
    for group in [*(g for g in GROUPS if (reals["group"] == g).any()), "all"]:
        part = reals if group == "all" else reals[reals["group"] == group]
        figures = _figures(
            part["age"], part["predicted_age"], part["sex"], part["prob_M"], part, n_boot, seed
        )
        rows.append(
            _row(source=HELD_OUT, condition="", group=group, role=TRUE_ROLE, seed="")
            | figures
            | {"n_outliers": 0, "in_distribution": True, "headline": False}
        )
    return rows


def _across(per_seed: pd.DataFrame, condition, group, role) -> dict:
    """The mean of each per-seed figure with a Student-t interval across the in-distribution
    seeds (headline); across every seed, headline False, when none is in distribution."""
    inside = per_seed[per_seed["in_distribution"]]
    used = inside if len(inside) else per_seed
    row = _row(source=GENERATED, condition=condition, group=group, role=role, seed=ACROSS)
    row |= {
        "n": int(used["n"].sum()),
        "n_outliers": int(used["n_outliers"].sum()),
        "n_seeds": len(used),
        "seeds_used": ",".join(str(s) for s in used["seed"]),
        "in_distribution": bool(per_seed["in_distribution"].all()),
        "headline": bool(len(inside)),
    }
    for figure in FIGURES:
        if figure == "age_r":  # correlations average in Fisher's z and keep [-1, 1]
            summary = correlation_interval(used[figure])
        else:
            summary = mean_interval(used[figure], bounds=FIGURE_BOUNDS.get(figure))
        row |= {figure: summary["mean"], f"{figure}_low": summary["low"]}
        row[f"{figure}_high"] = summary["high"]
    return row


def instruction_table(
    images: pd.DataFrame, reals: pd.DataFrame, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """The long table of instruction following (TABLE_COLUMNS): calibration rows on the held-out
    reals (per group, then "all"), per (condition, group, role, seed) rows on the images that
    are not outliers, then per (condition, group, role) the across-seed row (seed "all").

    A seed's set out of distribution (cnn_interpretable False) keeps its row, marked
    in_distribution False; the across-seed row averages only in-distribution seeds (headline
    True), or every seed with headline False when none is in distribution."""
    require_columns(images, IMAGE_COLUMNS, "instruction-following images table")
    require_columns(reals, REAL_COLUMNS, "instruction-following reals table")
    require_groups(images["group"], "instruction-following images table")
    require_groups(reals["group"], "instruction-following reals table")
    bad_roles = sorted(set(images["role"]) - set(ROLES))
    if bad_roles:
        raise ValueError(f"instruction-following images table: unknown role(s) {bad_roles}")
    images = images.assign(
        outlier=as_bool(images["outlier"], "images table, column outlier"),
        cnn_interpretable=as_bool(images["cnn_interpretable"], "images table, cnn_interpretable"),
    )
    rows = _calibration_rows(reals.reset_index(drop=True), n_boot, seed)
    keys = ["condition", "group", "role", "seed"]
    per_seed = []
    for (condition, group, role, run_seed), part in images.groupby(keys, sort=False):
        verdict = part["cnn_interpretable"].unique()
        if len(verdict) != 1:
            raise ValueError(
                f"images table: cnn_interpretable differs within the set {condition} {group} "
                f"{role} seed {run_seed}; it is the set's verdict, one value per set"
            )
        kept = part[~part["outlier"]]
        figures = _figures(
            kept["requested_age"],
            kept["predicted_age"],
            kept["requested_sex"],
            kept["prob_M"],
            kept,
            n_boot,
            seed,
        )
        per_seed.append(
            _row(source=GENERATED, condition=condition, group=group, role=role, seed=run_seed)
            | figures
            | {
                "n_outliers": int(part["outlier"].sum()),
                "n_seeds": 1,
                "seeds_used": str(run_seed),
                "in_distribution": bool(verdict[0]),
                "headline": False,
            }
        )
    table = pd.DataFrame(per_seed, columns=TABLE_COLUMNS)
    table = _ordered(table)
    across = [
        _across(part, *key)
        for key, part in table.groupby(["condition", "group", "role"], sort=False)
    ]
    rows += table.to_dict(orient="records") + across
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    pooled = out[(out["source"] == HELD_OUT) & (out["group"] == "all")]
    out["age_judge_valid"] = out["sex_judge_valid"] = False
    if len(pooled) == 1:
        out["age_judge_valid"] = age_judge_valid(pooled.iloc[0])
        out["sex_judge_valid"] = sex_judge_valid(pooled.iloc[0], reals["sex"])
    return out


def age_judge_valid(row) -> bool:
    """The age judge on the held-out reals: r >= MIN_AGE_R and its lower bound above 0."""
    return bool(row["age_r"] >= MIN_AGE_R and row["age_r_low"] > 0)


def sex_judge_valid(row, sexes) -> bool:
    """The sex judge on the held-out reals: accuracy's lower bound above the majority sex's
    share, AUC's lower bound above 0.5."""
    share = pd.Series(np.asarray(sexes).astype(str)).value_counts(normalize=True)
    majority = float(share.max()) if len(share) else 1.0
    return bool(row["sex_accuracy_low"] > majority and row["sex_auc_low"] > 0.5)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Conditions in order of appearance, AD before CN, instructed before the baseline, seeds
    ascending."""
    conditions = {c: i for i, c in enumerate(dict.fromkeys(table["condition"]))}
    rank = pd.DataFrame(
        {
            "c": table["condition"].map(conditions),
            "g": table["group"].map({g: i for i, g in enumerate(GROUPS)}),
            "r": table["role"].map({r: i for i, r in enumerate(ROLES)}),
            "s": table["seed"],
        }
    )
    order = rank.sort_values(["c", "g", "r", "s"], kind="stable").index
    return table.loc[order].reset_index(drop=True)
