"""Per-set metrics of one replicate seed: memorization, fidelity/diversity in the CNN's feature
space against held-out reals, the out-of-distribution guard of the CNN counts, and the CNN's mean
P(AD) with its interval.

Fidelity and diversity depend on sample size, so every comparison is size-matched: the larger of
the two sets is subsampled to the smaller one's size (``cfg.matched_draws`` times, averaged). The
reference for what "in distribution" means is what the real train slices of a class get against
the held-out real slices of that class at the same size; a generated set whose precision or
coverage falls below ``cfg.ood_fraction`` of that reference lies outside the distribution the CNN
was trained on, and its CNN counts are marked not interpretable.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.classifier import extract_features, load_classifier
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.images import load_normalised, require_columns
from brainmr.evaluate.metrics import (
    frechet_distance,
    kid,
    memorization_summary,
    memorization_threshold,
    prdc,
)
from brainmr.evaluate.outliers import REAL_CONDITION
from brainmr.evaluate.stats import matched_size, mean_interval

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
    generated: dict[str, float], reference: dict[str, float], fraction: float
) -> tuple[bool, str]:
    """Whether a set's precision or coverage falls below ``fraction`` of the reals' own. Where
    the reference cannot be measured (fewer than 2 held-out reals), nothing can be vouched for."""
    if not all(np.isfinite(reference[key]) for key in ("precision", "coverage")):
        return True, "no reference: fewer than 2 held-out reals of the class"
    reasons = [
        f"{key} {generated[key]:.2f} < {fraction:g} x {reference[key]:.2f} (train reals)"
        for key in ("precision", "coverage")
        if not generated[key] >= fraction * reference[key]  # NaN counts as failing
    ]
    return bool(reasons), "; ".join(reasons)


def set_metrics(
    scores: pd.DataFrame,
    features: dict[str, np.ndarray],
    train_features: dict[str, np.ndarray],
    cfg: JudgeConfig,
) -> pd.DataFrame:
    """One row per generated set and per held-out real class. ``scores``: one seed's flagged
    score table (outlier column); ``features``: CNN features aligned with ``scores`` rows, per
    (condition, group) key ``f"{condition}/{group}"``; ``train_features``: per group."""
    require_columns(scores, ["condition", "group", "prob_AD", "nn_corr", "outlier"], "scores")
    real = scores[scores["condition"] == REAL_CONDITION]
    threshold = memorization_threshold(real["nn_corr"].to_numpy(float), cfg.memorization_quantile)
    rows = []
    for (condition, group), part in scores.groupby(["condition", "group"], sort=False):
        reference = features[f"{REAL_CONDITION}/{group}"]
        is_real = condition == REAL_CONDITION
        # Held-out reals are the reference; their own row compares train reals with them.
        candidate = train_features[group] if is_real else features[f"{condition}/{group}"]
        baseline = matched_fidelity(reference, train_features[group], cfg)
        measured = baseline if is_real else matched_fidelity(reference, candidate, cfg)
        ood, why = (
            (False, "") if is_real else out_of_distribution(measured, baseline, cfg.ood_fraction)
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
            | {"cnn_interpretable": not ood, "ood_reason": why}
        )
        if ood:
            log.warning("%s/%s: CNN counts not interpretable: %s", condition, group, why)
    table = pd.DataFrame(rows)
    return table.sort_values(  # generated sets in their order of appearance, then the reals
        "condition", key=lambda c: c == REAL_CONDITION, kind="stable"
    ).reset_index(drop=True)


def set_metrics_file(
    *, scores: Path, classifier: Path, train: pd.DataFrame, out_tsv: Path, cfg: JudgeConfig
) -> pd.DataFrame:
    """Read one seed's flagged scores, embed every image with that seed's CNN, write the table."""
    require_columns(train, ["path", "group"], "training table")
    table = io.read_tsv(scores).astype({"condition": str, "group": str, "path": str})
    model = load_classifier(Path(classifier))

    def embed(paths) -> np.ndarray:
        return extract_features(model, load_normalised(paths), cfg.cnn_batch_size)

    features = {
        f"{condition}/{group}": embed(part["path"])
        for (condition, group), part in table.groupby(["condition", "group"], sort=False)
    }
    train_features = {g: embed(train.loc[train["group"] == g, "path"]) for g in GROUPS}
    metrics = set_metrics(table, features, train_features, cfg)
    io.write_tsv(out_tsv, metrics)
    return metrics
