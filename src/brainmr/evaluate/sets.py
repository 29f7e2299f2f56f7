"""Per-set metrics of one replicate seed: memorization, fidelity/diversity in the CNN's feature
space, the out-of-distribution guard of the CNN counts, and the CNN's mean P(AD) with its interval.

The guard asks whether a set looks like real brains, of either class: its reference is the real
slices the CNN did not train on (held-out test subjects, outliers excluded, and the CNN's own
validation subjects), both classes pooled. A class-wise reference would withhold the very effect
under study: realistic "AD" images that look CN score low against real AD alone. The level that
"in distribution" means is measured on the same footing: in each of ``cfg.matched_draws`` random
splits of those reals into a reference half and a candidate half, the candidate half's precision
and coverage against the reference half, beside a same-size subsample of the set against the same
half. A set below ``cfg.ood_fraction`` of that level in precision or coverage is flagged, and its
CNN counts are withheld. Averaging over many splits of every unseen real (not 4 or 5 reals of one
class) keeps verdicts at the bar from flipping with the draw.

Class-wise fidelity (Frechet distance, KID, PRDC against the held-out reals of the set's class,
size-matched) stays as description, with the class-wise rule's verdict beside it for comparison.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.classifier import extract_features, load_classifier
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.metrics import (
    frechet_distance,
    kid,
    memorization_summary,
    memorization_threshold,
    prdc,
)
from brainmr.evaluate.outliers import REAL_CONDITION
from brainmr.evaluate.stats import matched_size, mean_interval
from brainmr.io import require_columns

log = logging.getLogger(__name__)

FIDELITY_KEYS = ("frechet_distance", "kid", "precision", "recall", "density", "coverage")


def fidelity(reference: np.ndarray, candidate: np.ndarray, k: int) -> dict[str, float]:
    """Frechet distance, KID and PRDC of ``candidate`` against ``reference`` (feature rows)."""
    out = prdc(reference, candidate, k)
    return {
        "frechet_distance": frechet_distance(candidate, reference),
        "kid": kid(candidate, reference),
        **{key: out[key] for key in ("precision", "recall", "density", "coverage")},
    }


def matched_fidelity(
    reference: np.ndarray, candidate: np.ndarray, cfg: JudgeConfig
) -> dict[str, float]:
    return matched_size(
        lambda ref, cand: fidelity(ref, cand, cfg.knn_k),
        reference,
        candidate,
        n_draws=cfg.matched_draws,
        seed=cfg.seed,
    )


def out_of_distribution(
    generated: dict[str, float], reference: dict[str, float], fraction: float, what: str
) -> tuple[bool, str]:
    """Whether a set's precision or coverage falls below ``fraction`` of the reals' own level
    (``what`` names that level). Where the level cannot be measured, nothing is vouched for."""
    if not all(np.isfinite(reference[key]) for key in ("precision", "coverage")):
        return True, f"no reference: too few {what} to measure the in-distribution level"
    reasons = [
        f"{key} {generated[key]:.2f} < {fraction:g} x {reference[key]:.2f} ({what})"
        for key in ("precision", "coverage")
        if not generated[key] >= fraction * reference[key]  # NaN counts as failing
    ]
    return bool(reasons), "; ".join(reasons)


GUARD_WHAT = "unseen reals, both classes"


def pooled_guard(
    unseen: np.ndarray, sets: dict[str, np.ndarray], cfg: JudgeConfig
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The in-distribution level and each set's precision/coverage against the same reference.

    ``unseen``: feature rows of the reals the CNN did not train on, both classes. Each draw
    splits them at random into a reference half (the larger) and a candidate half of m rows;
    the level is the candidate half's precision and coverage against the reference half, and a
    set's figure is that of m of its rows (drawn without replacement; all of them when it has
    fewer) against the same half. Means over ``cfg.matched_draws`` draws."""
    nan = {"precision": np.nan, "coverage": np.nan, "n_matched": 0}
    n = len(unseen)
    m = n // 2
    if m < 2:
        return nan, {name: dict(nan) for name in sets}
    rng = np.random.default_rng(cfg.seed)
    level, figures = [], {name: [] for name in sets}
    for _ in range(cfg.matched_draws):
        order = rng.permutation(n)
        reference, held = unseen[order[m:]], unseen[order[:m]]
        out = prdc(reference, held, cfg.knn_k)
        level.append((out["precision"], out["coverage"]))
        for name, rows in sets.items():
            pick = rows if len(rows) <= m else rows[rng.choice(len(rows), size=m, replace=False)]
            out = prdc(reference, pick, cfg.knn_k)
            figures[name].append((out["precision"], out["coverage"]))

    def mean(pairs: list, size: int) -> dict[str, float]:
        if not pairs or size == 0:
            return dict(nan)
        values = np.asarray(pairs, dtype=float).mean(axis=0)
        return {"precision": float(values[0]), "coverage": float(values[1]), "n_matched": size}

    return mean(level, m), {k: mean(v, min(m, len(sets[k]))) for k, v in figures.items()}


def set_metrics(
    scores: pd.DataFrame,
    features: dict[str, np.ndarray],
    train_features: dict[str, np.ndarray],
    unseen_features: np.ndarray,
    cfg: JudgeConfig,
) -> pd.DataFrame:
    """One row per set of ``scores`` (one seed's flagged score table: generated, ceiling and
    held-out real sets). ``features``: CNN features aligned with ``scores`` rows, per key
    ``f"{condition}/{group}"``; ``train_features``: the train reals' per class;
    ``unseen_features``: the CNN's validation reals (both classes), which join the held-out reals
    that are not outliers in the guard's reference."""
    require_columns(scores, ["condition", "group", "prob_AD", "nn_corr", "outlier"], "scores")
    real = scores[scores["condition"] == REAL_CONDITION]
    threshold = memorization_threshold(real["nn_corr"].to_numpy(float), cfg.memorization_quantile)
    kept_features = {}
    for (condition, group), part in scores.groupby(["condition", "group"], sort=False):
        kept_features[(condition, group)] = features[f"{condition}/{group}"][
            ~part["outlier"].to_numpy(bool)
        ]
    width = next(iter(features.values())).shape[1]
    real_kept = [f for (c, _), f in kept_features.items() if c == REAL_CONDITION]
    unseen = np.concatenate([*real_kept, np.asarray(unseen_features).reshape(-1, width)])
    candidates = {f"{c}/{g}": f for (c, g), f in kept_features.items() if c != REAL_CONDITION}
    level, guard = pooled_guard(unseen, candidates, cfg)
    rows = []
    for (condition, group), part in scores.groupby(["condition", "group"], sort=False):
        is_real = condition == REAL_CONDITION
        reference = kept_features.get((REAL_CONDITION, group), np.zeros((0, unseen.shape[1])))
        # Class-wise description: the set (held-out reals: the train reals) against the
        # held-out reals of its class, and the class-wise rule of earlier versions beside it.
        baseline = matched_fidelity(reference, train_features[group], cfg)
        candidate = train_features[group] if is_real else kept_features[(condition, group)]
        measured = baseline if is_real else matched_fidelity(reference, candidate, cfg)
        classwise_ood = (
            False
            if is_real
            else out_of_distribution(measured, baseline, cfg.ood_fraction, "train reals")[0]
        )
        figures = level if is_real else guard[f"{condition}/{group}"]
        ood, why = (
            (False, "")
            if is_real
            else out_of_distribution(figures, level, cfg.ood_fraction, GUARD_WHAT)
        )
        kept = part[~part["outlier"]]
        prob = mean_interval(kept["prob_AD"].to_numpy(float))
        rows.append(
            {"condition": condition, "group": group, "n": len(part), "n_kept": len(kept)}
            | memorization_summary(part["nn_corr"].to_numpy(float), threshold)
            | {"memorization_threshold": threshold}
            | {"mean_prob_AD": prob["mean"], "prob_AD_low": prob["low"]}
            | {"prob_AD_high": prob["high"]}
            | {key: measured[key] for key in FIDELITY_KEYS}
            | {"n_matched": measured["n_matched"]}
            | {f"reference_{key}": baseline[key] for key in ("precision", "coverage")}
            | {"classwise_ood": classwise_ood}
            | {f"guard_{key}": figures[key] for key in ("precision", "coverage", "n_matched")}
            | {f"guard_level_{key}": level[key] for key in ("precision", "coverage")}
            | {"guard_n_unseen": len(unseen)}
            | {"cnn_interpretable": not ood, "ood_reason": why}
        )
        if ood:
            log.warning("%s/%s: CNN counts not interpretable: %s", condition, group, why)
    table = pd.DataFrame(rows)
    return table.sort_values(  # generated and ceiling sets in order of appearance, then reals
        "condition", key=lambda c: c == REAL_CONDITION, kind="stable"
    ).reset_index(drop=True)


def set_metrics_file(
    *,
    scores: Path,
    classifier: Path,
    classifier_metrics: Path,
    train: pd.DataFrame,
    out_tsv: Path,
    cfg: JudgeConfig,
) -> pd.DataFrame:
    """Read one seed's flagged scores, embed every image with that seed's CNN (and the train
    slices, its validation subjects among them, named in its metrics), write the table."""
    require_columns(train, ["subject", "path", "group"], "training table")
    table = io.read_tsv(scores).astype({"condition": str, "group": str, "path": str})
    model = load_classifier(Path(classifier))
    info = io.read_json(classifier_metrics)
    if "val_subjects" not in info:
        raise ValueError(
            f"{classifier_metrics}: no val_subjects (the CNN's validation subjects); retrain the"
            " classifier with this version"
        )
    unknown = sorted(set(info["val_subjects"]) - set(train["subject"].astype(str)))
    if unknown:
        raise ValueError(
            f"{classifier_metrics}: validation subjects not in the train split: {unknown}"
        )
    is_val = train["subject"].astype(str).isin(info["val_subjects"]).to_numpy()

    def embed(paths) -> np.ndarray:
        return extract_features(model, load_normalised(paths), cfg.cnn_batch_size)

    features = {
        f"{condition}/{group}": embed(part["path"])
        for (condition, group), part in table.groupby(["condition", "group"], sort=False)
    }
    train_features = {g: embed(train.loc[train["group"] == g, "path"]) for g in GROUPS}
    unseen = embed(train.loc[is_val, "path"])
    metrics = set_metrics(table, features, train_features, unseen, cfg)
    io.write_tsv(out_tsv, metrics)
    return metrics
