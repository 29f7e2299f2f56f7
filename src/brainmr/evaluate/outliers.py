"""The outlier rule (paper 2.3, 3): images that clearly failed have a much lower likelihood.

An image's best log-likelihood is its larger log-likelihood over the two class KDEs. With the
held-out real slices' best log-likelihoods as reference,

    threshold = median - k x MAD (normal-scaled) of the held-out reals' best log-likelihoods

and an image is an outlier when its best log-likelihood < threshold. The rule scales with the KDE
space (dimension, bandwidth, spread), unlike a fixed margin in nats, and it is applied to the
held-out real rows too, so the table says how many reals it would flag.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from brainmr import io
from brainmr.conditions import REAL_CONDITION
from brainmr.evaluate.ceiling import is_ceiling
from brainmr.evaluate.scoring import CNN_COLUMNS, SCORE_COLUMNS, SEED_FREE_COLUMNS
from brainmr.evaluate.stats import robust_low_threshold
from brainmr.io import require_columns

log = logging.getLogger(__name__)

RULE = "best log-likelihood < median - k x MAD of the held-out reals' best log-likelihoods"


class FlaggedSets(NamedTuple):
    """One seed's flagged scores split by kind of set (see ``flagged_sets``)."""

    generated: pd.DataFrame  # images of the generated sets (not the reals, not the ceiling sets)
    real: pd.DataFrame  # the held-out reals
    threshold: float  # the outlier threshold the scores were flagged with
    outlier_files: set[str]  # paths of the generated images the rule flags


def is_generated(conditions: pd.Series) -> pd.Series:
    """Rows of a generated set: neither the held-out reals nor a ceiling set."""
    return (conditions != REAL_CONDITION) & ~conditions.map(is_ceiling).astype(bool)


def best_loglik(scores: pd.DataFrame) -> np.ndarray:
    """Max over classes of the per-image log-likelihoods (score TSV columns loglik_AD/_CN)."""
    return np.maximum(scores["loglik_AD"].to_numpy(float), scores["loglik_CN"].to_numpy(float))


def outlier_threshold(real_best: np.ndarray, mad_k: float) -> float:
    real_best = np.asarray(real_best, dtype=float)
    if real_best.size == 0:
        raise ValueError("outlier threshold needs at least one held-out real slice")
    return robust_low_threshold(real_best, mad_k)


def flagged_sets(scores: pd.DataFrame) -> FlaggedSets:
    """``flag_outliers``' table of one seed split into the generated images and the held-out
    reals (the ceiling sets in neither), with the threshold and the generated outliers' paths."""
    generated = scores[is_generated(scores["condition"])]
    real = scores[scores["condition"] == REAL_CONDITION]
    outlier_files = set(generated.loc[generated["outlier"], "path"])
    return FlaggedSets(generated, real, float(scores["threshold"].iloc[0]), outlier_files)


def read_scores(paths: list[Path], what: str, columns=SEED_FREE_COLUMNS) -> pd.DataFrame:
    """Concatenate per-image score tables, checking their columns."""
    frames = []
    for path in paths:
        table = io.read_tsv(path)
        require_columns(table, columns, f"score table {path}")
        frames.append(table)
    if not frames:
        raise ValueError(f"no {what} score tables given")
    return pd.concat(frames, ignore_index=True)


def with_cnn(scores: pd.DataFrame, cnn: pd.DataFrame) -> pd.DataFrame:
    """Seed-free scores joined with one seed's CNN outputs (CNN_COLUMNS) image by image, in the
    score table's columns and row order."""
    joined = scores.merge(cnn, on="path", how="left", validate="one_to_one")
    missing = joined.loc[joined["prob_AD"].isna(), "path"]
    if len(missing):
        raise ValueError(f"no CNN output for {len(missing)} image(s), e.g. {missing.iloc[0]}")
    return joined[SCORE_COLUMNS]


def flag_outliers(generated: pd.DataFrame, real: pd.DataFrame, mad_k: float) -> pd.DataFrame:
    """Generated and held-out real scores in one table, with best_loglik, threshold, outlier."""
    if (real["condition"] != REAL_CONDITION).any():
        raise ValueError(f"held-out real scores must have condition {REAL_CONDITION!r}")
    if (generated["condition"] == REAL_CONDITION).any():
        raise ValueError(f"a prompt condition may not be called {REAL_CONDITION!r}")
    scores = pd.concat([generated, real], ignore_index=True)
    scores["best_loglik"] = best_loglik(scores)
    threshold = outlier_threshold(best_loglik(real), mad_k)
    scores["threshold"] = threshold
    scores["outlier"] = scores["best_loglik"] < threshold
    return scores


def flag_outlier_files(
    *, generated: list[Path], real: Path, cnn: list[Path], out_tsv: Path, mad_k: float
) -> pd.DataFrame:
    """Read one seed's seed-free score tables (its generated sets, the ceiling sets and the
    held-out reals) and that seed's CNN outputs on them, flag outliers, write them all."""
    judged = read_scores([Path(p) for p in cnn], "CNN", CNN_COLUMNS)
    scores = flag_outliers(
        with_cnn(read_scores([Path(p) for p in generated], "generated"), judged),
        with_cnn(read_scores([Path(real)], "held-out real"), judged),
        mad_k,
    )
    is_real = scores["condition"] == REAL_CONDITION
    log.info(
        "outlier threshold %.2f: %d of %d generated, %d of %d held-out real flagged",
        scores["threshold"].iloc[0],
        int(scores.loc[~is_real, "outlier"].sum()),
        int((~is_real).sum()),
        int(scores.loc[is_real, "outlier"].sum()),
        int(is_real.sum()),
    )
    io.write_tsv(out_tsv, scores)
    return scores
