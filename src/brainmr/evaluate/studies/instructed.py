"""The instructions study's file steps: per replicate seed, every instructed image with its
request, the attribute judges' reading, its morphometry and outlier flag (from Table 1's flagged
scores) and its set's out-of-distribution verdict; the class-only baseline's images paired with
the same requests shuffled; then the study's table across seeds
(brainmr.evaluate.studies.following).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from brainmr import GROUPS, io
from brainmr.cohort.sets import generated_table
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.morphometry import MEASURES
from brainmr.evaluate.studies.attributes import load_attribute_judges, predict_attributes
from brainmr.evaluate.studies.following import (
    IMAGE_COLUMNS,
    INSTRUCTED,
    REAL_COLUMNS,
    REQUEST_COLUMNS,
    SHUFFLED,
    instruction_table,
    shuffled_requests,
)
from brainmr.io import require_columns

log = logging.getLogger(__name__)


def _judged(paths: list[str], judges, batch_size: int) -> pd.DataFrame:
    return predict_attributes(judges, load_normalised(paths), batch_size).reset_index(drop=True)


def _with_scores(table: pd.DataFrame, scores: pd.DataFrame, metrics: pd.DataFrame, of: str):
    """Join an image set to its flagged scores (outlier, morphometry) by path, and to its set's
    verdict in set_metrics (a set missing there is out of distribution: the guard fails closed)."""
    columns = ["path", "outlier", *MEASURES]
    joined = table.merge(scores[columns], on="path", how="left", validate="one_to_one")
    if joined["outlier"].isna().any():
        missing = joined.loc[joined["outlier"].isna(), "path"].iloc[0]
        raise ValueError(f"no score for generated image {missing}: rerun score_generated")
    group = str(table["group"].iloc[0])
    verdict = metrics[(metrics["condition"] == of) & (metrics["group"] == group)]
    ok = bool(verdict["cnn_interpretable"].iloc[0]) if len(verdict) else False
    return joined.assign(cnn_interpretable=ok)


def instruction_images(
    *,
    condition: str,
    baseline: str,
    seed: int,
    instructed_dirs: dict[str, Path],
    baseline_dirs: dict[str, Path],
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    judges,
    batch_size: int = 64,
) -> pd.DataFrame:
    """One seed's images of a templated condition (role "instructed") and of the class-only
    baseline (role "shuffled baseline": the same requests, permuted), per class, with
    IMAGE_COLUMNS and the image path."""
    frames = []
    for group in GROUPS:
        asked = generated_table(instructed_dirs[group])
        require_columns(asked, list(REQUEST_COLUMNS), f"manifest of {instructed_dirs[group]}")
        base = generated_table(baseline_dirs[group])
        if len(base) != len(asked):
            raise ValueError(
                f"baseline {baseline}/{group} has {len(base)} images, the instructed set "
                f"{len(asked)}: the shuffled requests must pair one to one"
            )
        shuffled = shuffled_requests(asked[list(REQUEST_COLUMNS)], seed)
        for role, table, of in (
            (INSTRUCTED, asked[["path", *REQUEST_COLUMNS]], condition),
            (SHUFFLED, base[["path"]].assign(**shuffled.reset_index(drop=True)), baseline),
        ):
            table = table.reset_index(drop=True)
            judged = pd.concat([table, _judged(table["path"].tolist(), judges, batch_size)], axis=1)
            judged = judged.assign(seed=seed, condition=condition, group=group, role=role)
            frames.append(_with_scores(judged, scores, metrics, of))
    return pd.concat(frames, ignore_index=True)[["path", *IMAGE_COLUMNS]]


def instruction_images_file(
    *,
    condition: str,
    baseline: str,
    seed: int,
    instructed_dirs: dict[str, Path],
    baseline_dirs: dict[str, Path],
    scores: Path,
    set_metrics: Path,
    judges: Path,
    out_tsv: Path,
    batch_size: int = 64,
) -> None:
    table = instruction_images(
        condition=condition,
        baseline=baseline,
        seed=seed,
        instructed_dirs=instructed_dirs,
        baseline_dirs=baseline_dirs,
        scores=io.read_tsv(scores),
        metrics=io.read_tsv(set_metrics),
        judges=load_attribute_judges(Path(judges)),
        batch_size=batch_size,
    )
    io.write_tsv(out_tsv, table)
    log.info("%s seed %d: %d judged images -> %s", condition, seed, len(table), out_tsv)


def heldout_reals(
    slices: pd.DataFrame, morphometry: pd.DataFrame, judges, batch_size: int = 64
) -> pd.DataFrame:
    """The held-out reals with their true age and sex, the judges' reading and morphometry
    (REAL_COLUMNS): the calibration rows of the study."""
    require_columns(slices, ["subject", "group", "split", "path", "age", "sex"], "slices table")
    test = slices[slices["split"] == "test"].reset_index(drop=True)
    judged = pd.concat([test, _judged(test["path"].tolist(), judges, batch_size)], axis=1)
    # both from tables read with brainmr.io.read_tsv: subject is text in each
    measures = morphometry[["subject", *MEASURES]]
    out = judged.merge(measures, on="subject", validate="one_to_one")
    return out[["subject", *REAL_COLUMNS]]


def summarise_instructions(
    *,
    images: list[Path],
    slices: pd.DataFrame,
    morphometry: Path,
    judges: Path,
    n_bootstrap: int,
    seed: int,
    out_table: Path,
    out_images: Path,
    out_reals: Path,
) -> None:
    """Every seed's judged images and the held-out reals -> the study's long table."""
    table = pd.concat([io.read_tsv(p) for p in images], ignore_index=True)
    reals = heldout_reals(slices, io.read_tsv(morphometry), load_attribute_judges(Path(judges)))
    io.write_tsv(out_images, table)
    io.write_tsv(out_reals, reals)
    io.write_tsv(out_table, instruction_table(table, reals, n_boot=n_bootstrap, seed=seed))
