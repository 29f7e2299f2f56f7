"""Per-set metrics of one replicate seed: memorization, fidelity/diversity in the CNN's feature
space, the out-of-distribution guard of the CNN counts, and the CNN's mean P(AD) with its interval.

The guard asks whether a set looks like real brains, of either class: its reference is the real
slices the CNN did not train on (held-out test subjects, outliers excluded, and the CNN's own
validation subjects), both classes pooled. What "in distribution" means is measured on the same
footing, per class and at the set's size (``pooled_guard``): real candidates of the class the
set was asked for, against the same reference, in many random splits. A set below
``cfg.ood_fraction`` of that level in precision, coverage or recall is flagged, and its CNN counts
are withheld. ``bench/calibration.py`` measures how often faithful and broken sets are flagged at
the demo's and the paper's sizes.

Class-wise fidelity (Frechet distance, KID, PRDC against the held-out reals of the set's class,
size-matched) stays as description, with the class-wise rule's verdict beside it for comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.ceiling import is_ceiling
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.classifier import extract_features, load_classifier
from brainmr.evaluate.judges.metrics import (
    frechet_distance,
    kid,
    memorization_summary,
    memorization_threshold,
    prdc,
    prdc_against,
    real_radius,
)
from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.evaluate.stats.intervals import PROPORTION, matched_size, mean_interval
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
    generated: dict[str, float],
    reference: dict[str, float],
    fraction: float,
    what: str,
    keys: tuple[str, ...] = ("precision", "coverage"),
) -> tuple[bool, str]:
    """Whether a set's figures (``keys``) fall below ``fraction`` of the reals' own level
    (``what`` names that level). Where the level cannot be measured, nothing is vouched for."""
    if not all(np.isfinite(reference[key]) for key in keys):
        return True, f"no reference: too few {what} to measure the in-distribution level"
    reasons = [
        f"{key} {generated[key]:.2f} < {fraction:g} x {reference[key]:.2f} ({what})"
        for key in keys
        if not generated[key] >= fraction * reference[key]  # NaN counts as failing
    ]
    return bool(reasons), "; ".join(reasons)


GUARD_WHAT = "unseen reals of the class asked for"
GUARD_KEYS = ("precision", "coverage", "recall")


@dataclass(frozen=True)
class GuardSet:
    """An image set as the guard sees it: feature rows, the class it was asked for, and per
    row the real subject it was made from (a ceiling image) or None (a generated image)."""

    rows: np.ndarray
    group: str
    subjects: np.ndarray | None = None


def _half_split(groups: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each class split at random into a candidate half (the smaller) and a reference half, so
    that every draw has candidates of both classes and the reference keeps the class mix."""
    candidate, reference = [], []
    for group in GROUPS:
        index = rng.permutation(np.flatnonzero(groups == group))
        candidate.append(index[: len(index) // 2])
        reference.append(index[len(index) // 2 :])
    return np.concatenate(candidate), np.concatenate(reference)


def pooled_guard(
    unseen: np.ndarray,
    groups: np.ndarray,
    subjects: np.ndarray,
    sets: dict[str, GuardSet],
    cfg: JudgeConfig,
) -> dict[str, dict[str, float]]:
    """Per set, its precision, coverage and recall against real brains of both classes, and
    the level that faithful real images of the class it was asked for reach on the same
    footing.

    ``unseen``: feature rows of the reals the CNN did not train on, with their ``groups`` and
    ``subjects``. Each of ``cfg.matched_draws`` draws splits each class into a candidate half
    and a reference half (``_half_split``); the reference is both classes pooled, since a
    class-wise one would withhold the very effect under study (AD images that look CN). The
    level is m real candidates of the set's class against that reference, the set's figure m
    of its own rows: m = the smaller of the two counts, so both are size-matched and a faithful
    set of either class, at any size, is level with its class. Coverage alone would punish a
    set for filling one class's part of a pooled reference, which a class-wise level does not;
    recall catches what precision and coverage miss in many dimensions, a set without the
    reals' diversity (blurred, or one image repeated). A set's rows made from a subject in the
    reference half (a ceiling image and its source slice) sit out that draw. Means over the
    draws; nan where no draw had a candidate (the guard then fails closed)."""
    groups, subjects = np.asarray(groups).astype(str), np.asarray(subjects).astype(str)
    rng = np.random.default_rng(cfg.seed)
    draws: dict[str, list] = {name: [] for name in sets}
    for _ in range(cfg.matched_draws):
        candidate, reference = _half_split(groups, rng)
        if len(reference) < 2:
            break
        ref = unseen[reference]
        radius = real_radius(ref, cfg.knn_k)
        in_reference = set(subjects[reference])
        for name, guard_set in sets.items():
            pool = candidate[groups[candidate] == guard_set.group]
            rows = np.arange(len(guard_set.rows))
            if guard_set.subjects is not None:
                rows = rows[
                    ~np.isin(np.asarray(guard_set.subjects).astype(str), list(in_reference))
                ]
            m = min(len(pool), len(rows))
            if m == 0:
                continue
            level = prdc_against(ref, radius, unseen[rng.choice(pool, m, replace=False)], cfg.knn_k)
            pick = guard_set.rows[rng.choice(rows, m, replace=False)]
            figure = prdc_against(ref, radius, pick, cfg.knn_k)
            draws[name].append(
                [figure[k] for k in GUARD_KEYS] + [level[k] for k in GUARD_KEYS] + [m]
            )
    out = {}
    for name, values in draws.items():
        mean = np.nanmean(np.asarray(values, float), axis=0) if values else np.full(7, np.nan)
        out[name] = dict(zip(GUARD_KEYS, mean[:3], strict=True))
        out[name] |= {f"level_{k}": v for k, v in zip(GUARD_KEYS, mean[3:6], strict=True)}
        out[name]["n_matched"] = float(mean[6])
    return out


def guard_verdict(figures: dict[str, float], fraction: float) -> tuple[bool, str]:
    """Out of distribution where any of the set's GUARD_KEYS falls below ``fraction`` of the
    level of its class (pooled_guard's figures); no measured level vouches for nothing."""
    level = {key: figures[f"level_{key}"] for key in GUARD_KEYS}
    return out_of_distribution(figures, level, fraction, GUARD_WHAT, GUARD_KEYS)


def _subjects(part: pd.DataFrame) -> np.ndarray:
    """Each image's source subject ("" for a generated image: scores without the column too)."""
    if "subject" not in part:
        return np.full(len(part), "", dtype=object)
    return part["subject"].fillna("").astype(str).to_numpy()


def set_metrics(
    scores: pd.DataFrame,
    features: dict[str, np.ndarray],
    train_features: dict[str, np.ndarray],
    unseen: pd.DataFrame,
    unseen_features: np.ndarray,
    cfg: JudgeConfig,
) -> pd.DataFrame:
    """One row per set of ``scores`` (one seed's flagged score table: generated, ceiling and
    held-out real sets). ``features``: CNN features aligned with ``scores`` rows, per key
    ``f"{condition}/{group}"``; ``train_features``: the train reals' per class; ``unseen``
    (subject, group) and ``unseen_features``: the CNN's validation reals, which join the
    held-out reals that are not outliers in the guard's reference."""
    require_columns(scores, ["condition", "group", "prob_AD", "nn_corr", "outlier"], "scores")
    require_columns(unseen, ["subject", "group"], "the CNN's validation reals")
    real = scores[scores["condition"] == REAL_CONDITION]
    threshold = memorization_threshold(real["nn_corr"].to_numpy(float), cfg.memorization_quantile)
    kept, kept_features = {}, {}
    for (condition, group), part in scores.groupby(["condition", "group"], sort=False):
        keep = ~part["outlier"].to_numpy(bool)
        kept[(condition, group)] = part[keep]
        kept_features[(condition, group)] = features[f"{condition}/{group}"][keep]
    width = next(iter(features.values())).shape[1]
    reals = [(g, kept[(c, g)]) for (c, g) in kept if c == REAL_CONDITION]
    pool = np.concatenate(
        [*(kept_features[(REAL_CONDITION, g)] for g, _ in reals)]
        + [np.asarray(unseen_features).reshape(-1, width)]
    )
    pool_groups = np.concatenate([*(part["group"] for _, part in reals), unseen["group"]])
    pool_subjects = np.concatenate([*(_subjects(part) for _, part in reals), _subjects(unseen)])
    candidates = {
        f"{c}/{g}": GuardSet(f, g, _subjects(kept[(c, g)]) if is_ceiling(c) else None)
        for (c, g), f in kept_features.items()
        if c != REAL_CONDITION
    }
    guard = pooled_guard(pool, pool_groups, pool_subjects, candidates, cfg)
    rows = []
    for (condition, group), part in scores.groupby(["condition", "group"], sort=False):
        is_real = condition == REAL_CONDITION
        reference = kept_features.get((REAL_CONDITION, group), np.zeros((0, width)))
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
        figures = guard.get(f"{condition}/{group}", {})
        ood, why = (False, "") if is_real else guard_verdict(figures, cfg.ood_fraction)
        kept_part = part[~part["outlier"]]
        prob = mean_interval(kept_part["prob_AD"].to_numpy(float), bounds=PROPORTION)
        rows.append(
            {"condition": condition, "group": group, "n": len(part), "n_kept": len(kept_part)}
            | memorization_summary(part["nn_corr"].to_numpy(float), threshold)
            | {"memorization_threshold": threshold}
            | {"mean_prob_AD": prob["mean"], "prob_AD_low": prob["low"]}
            | {"prob_AD_high": prob["high"]}
            | {key: measured[key] for key in FIDELITY_KEYS}
            | {"n_matched": measured["n_matched"]}
            | {f"reference_{key}": baseline[key] for key in ("precision", "coverage")}
            | {"classwise_ood": classwise_ood}
            | {f"guard_{key}": figures.get(key, np.nan) for key in (*GUARD_KEYS, "n_matched")}
            | {f"guard_level_{key}": figures.get(f"level_{key}", np.nan) for key in GUARD_KEYS}
            | {"guard_n_unseen": len(pool)}
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
    features: list[Path],
    cnn: list[Path],
    classifier: Path,
    classifier_metrics: Path,
    train: pd.DataFrame,
    out_tsv: Path,
    cfg: JudgeConfig,
) -> pd.DataFrame:
    """Read one seed's flagged scores and its CNN's features of those images (``features``:
    .npy rows in the order of the ``cnn`` tables, judge_images' outputs), embed the train slices
    (its validation subjects among them, named in its metrics), write the table."""
    require_columns(train, ["subject", "path", "group"], "training table")
    table = io.read_tsv(scores)
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
    if len(features) != len(cnn):
        raise ValueError(f"{len(features)} feature files for {len(cnn)} CNN tables")
    row_of = {}
    for table_path, feature_path in zip(cnn, features, strict=True):
        rows = io.load_npy(feature_path)
        paths = io.read_tsv(table_path)["path"]
        if len(paths) != len(rows):
            raise ValueError(f"{feature_path}: {len(rows)} rows for {len(paths)} images")
        row_of |= dict(zip(paths, rows, strict=True))

    def embed(paths) -> np.ndarray:
        return extract_features(model, load_normalised(paths), cfg.cnn_batch_size)

    by_set = table.groupby(["condition", "group"], sort=False)
    known = {f"{c}/{g}": np.stack([row_of[p] for p in part["path"]]) for (c, g), part in by_set}
    train_features = {g: embed(train.loc[train["group"] == g, "path"]) for g in GROUPS}
    unseen = train.loc[is_val, ["subject", "group"]]
    metrics = set_metrics(
        table, known, train_features, unseen, embed(train.loc[is_val, "path"]), cfg
    )
    io.write_tsv(out_tsv, metrics)
    return metrics
