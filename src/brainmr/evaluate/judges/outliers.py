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
from brainmr.evaluate.judges.scoring import CNN_COLUMNS, SCORE_COLUMNS, SEED_FREE_COLUMNS
from brainmr.evaluate.stats.intervals import robust_low_threshold
from brainmr.io import require_columns

log = logging.getLogger(__name__)

FLAG_COLUMNS = ["best_loglik", "threshold", "outlier"]
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
    """Seed-free scores (flagged or not) joined with one seed's CNN outputs (CNN_COLUMNS) image
    by image, in SCORE_COLUMNS order, then the flags, in the score table's row order."""
    joined = scores.merge(cnn, on="path", how="left", validate="one_to_one")
    missing = joined.loc[joined["prob_AD"].isna(), "path"]
    if len(missing):
        raise ValueError(f"no CNN output for {len(missing)} image(s), e.g. {missing.iloc[0]}")
    return joined[SCORE_COLUMNS + [c for c in FLAG_COLUMNS if c in scores]]


def flag_references(real: pd.DataFrame, ceilings: pd.DataFrame, mad_k: float) -> pd.DataFrame:
    """The held-out reals and the ceiling sets (seed-free scores, the same in every seed) in one
    table with best_loglik, threshold and outlier; the threshold comes from the reals alone."""
    if (real["condition"] != REAL_CONDITION).any():
        raise ValueError(f"held-out real scores must have condition {REAL_CONDITION!r}")
    if len(ceilings) and not ceilings["condition"].map(is_ceiling).all():
        raise ValueError("ceiling scores must have ceiling conditions only")
    threshold = outlier_threshold(best_loglik(real), mad_k)
    return flag_below(pd.concat([ceilings, real], ignore_index=True), threshold)


def flag_below(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Scores with best_loglik, the threshold and outlier (best log-likelihood below it)."""
    scores = scores.assign(best_loglik=best_loglik(scores), threshold=threshold)
    scores["outlier"] = scores["best_loglik"] < threshold
    return scores


def flag_outliers(generated: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """One seed's generated scores flagged with the references' threshold (``flag_references``),
    in one table with the references (generated rows first)."""
    if (generated["condition"] == REAL_CONDITION).any():
        raise ValueError(f"a prompt condition may not be called {REAL_CONDITION!r}")
    threshold = float(references["threshold"].iloc[0])
    generated = flag_below(generated, threshold)
    return pd.concat([generated, references[generated.columns]], ignore_index=True)


def flag_reference_files(
    *, real: Path, ceilings: list[Path], out_tsv: Path, mad_k: float
) -> pd.DataFrame:
    """Read the held-out reals' and the ceiling sets' seed-free scores, flag them, write them:
    once for all seeds (``flag_references``)."""
    ceiling = (
        read_scores([Path(p) for p in ceilings], "ceiling")
        if ceilings
        else pd.DataFrame(columns=SEED_FREE_COLUMNS)
    )
    scores = flag_references(read_scores([Path(real)], "held-out real"), ceiling, mad_k)
    is_real = scores["condition"] == REAL_CONDITION
    log.info(
        "outlier threshold %.2f: %d of %d held-out real, %d of %d ceiling images flagged",
        scores["threshold"].iloc[0],
        int(scores.loc[is_real, "outlier"].sum()),
        int(is_real.sum()),
        int(scores.loc[~is_real, "outlier"].sum()),
        int((~is_real).sum()),
    )
    io.write_tsv(out_tsv, scores)
    return scores


def flag_outlier_files(
    *, generated: list[Path], references: Path, cnn: list[Path], out_tsv: Path
) -> pd.DataFrame:
    """One seed's table: its generated sets' seed-free scores flagged with the references'
    threshold, the flagged references, and the seed's CNN outputs on every image."""
    judged = read_scores([Path(p) for p in cnn], "CNN", CNN_COLUMNS)
    flagged = flag_outliers(
        read_scores([Path(p) for p in generated], "generated"), io.read_tsv(references)
    )
    scores = with_cnn(flagged, judged)
    log.info(
        "%d of %d generated images flagged",
        int(scores.loc[is_generated(scores["condition"]), "outlier"].sum()),
        int(is_generated(scores["condition"]).sum()),
    )
    io.write_tsv(out_tsv, scores)
    return scores
