"""Per-image scores, computed once per image set: KDE log-likelihoods, nearest training slice
(correlation inside the brain mask) and the morphometric judge's measures (``score_images``: they
do not depend on the replicate seed), and, per replicate seed's CNN, P(AD) with the CNN features
of the guard and the fidelity metrics in one pass (``judge_images``). ``flag_outliers`` joins the
two per seed into the table every Table 1 number is computed from (SCORE_COLUMNS)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import io
from brainmr.evaluate.images import flatten, load_normalised
from brainmr.evaluate.judges.classifier import judge_stack, load_classifier
from brainmr.evaluate.judges.kde import load_kde
from brainmr.evaluate.judges.metrics import brain_mask, masked_nearest_neighbours
from brainmr.evaluate.judges.morphometry import MEASURES, morphometry_table
from brainmr.evaluate.stats.binary import THRESHOLD
from brainmr.io import require_columns, require_groups
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

# What does not depend on the seed, and what a seed's CNN adds; together a seed's score table.
SEED_FREE_COLUMNS = [
    "path",
    "file",
    "condition",
    "group",
    "subject",
    "loglik_AD",
    "loglik_CN",
    "nn_corr",
    "nn_path",
    *MEASURES,
]
CNN_COLUMNS = ["path", "prob_AD", "predicted"]
SCORE_COLUMNS = [*SEED_FREE_COLUMNS[:7], *CNN_COLUMNS[1:], *SEED_FREE_COLUMNS[7:]]


def score_images(
    *,
    images: pd.DataFrame,
    kde_model: Path,
    train: pd.DataFrame,
    out_tsv: Path,
    threads: int = 1,
) -> None:
    """The seed-free scores of each image (columns path, condition, group, optionally subject;
    .png or .npy) against the KDEs and the training slices (columns path, group)."""
    require_columns(images, ["path", "condition", "group"], "images table")
    require_columns(train, ["path", "group"], "training table")
    require_groups(images["group"], "images table")
    if images.empty:
        raise ValueError("images table is empty: nothing to score")
    limit_threads(threads)
    stack = load_normalised(images["path"])
    pixels = flatten(stack)
    loglik = load_kde(Path(kde_model)).score(pixels)
    train_paths = train["path"].astype(str).to_numpy()
    train_pixels = flatten(load_normalised(train_paths))
    # Inside the brain only: the shared black background makes any two aligned slices correlate.
    nn_index, nn_corr = masked_nearest_neighbours(pixels, train_pixels, brain_mask(train_pixels))
    scores = pd.DataFrame(
        {
            "path": images["path"].astype(str).to_numpy(),
            "file": [Path(p).name for p in images["path"]],
            "condition": images["condition"].astype(str).to_numpy(),
            "group": images["group"].astype(str).to_numpy(),
            # the real subject an image is (held-out reals) or was made from (ceiling sets)
            "subject": images["subject"].astype(str).to_numpy() if "subject" in images else "",
            "loglik_AD": loglik["AD"],
            "loglik_CN": loglik["CN"],
            "nn_corr": nn_corr,
            "nn_path": train_paths[nn_index],
        }
    )
    scores = pd.concat([scores, morphometry_table(stack).reset_index(drop=True)], axis=1)
    log.info("scored %d images -> %s", len(scores), out_tsv)
    io.write_tsv(out_tsv, scores[SEED_FREE_COLUMNS])


def judge_images(
    *,
    scores: Path,
    classifier: Path,
    out_tsv: Path,
    out_features: Path,
    batch_size: int = 64,
    threads: int = 1,
    model=None,
) -> None:
    """One seed's CNN on the images of a seed-free score table, in one pass: P(AD) and the
    decision (CNN_COLUMNS) to ``out_tsv``, the penultimate features (rows in the same order)
    to ``out_features`` (.npy). ``model``: the loaded CNN, where a caller judges several sets."""
    table = io.read_tsv(scores)
    require_columns(table, ["path"], f"score table {scores}")
    limit_threads(threads, torch=True)
    model = model if model is not None else load_classifier(Path(classifier))
    prob, features = judge_stack(model, load_normalised(table["path"]), batch_size)
    out = pd.DataFrame({"path": table["path"].to_numpy(), "prob_AD": prob})
    out["predicted"] = np.where(prob >= THRESHOLD, "AD", "CN")
    io.write_tsv(out_tsv, out[CNN_COLUMNS])
    io.save_npy(out_features, features)
    log.info("judged %d images with %s -> %s", len(out), classifier, out_tsv)


def judge_image_sets(
    *,
    scores: list[Path],
    classifier: Path,
    out_tables: list[Path],
    out_features: list[Path],
    batch_size: int = 64,
    threads: int = 1,
) -> None:
    """judge_images for several sets with the CNN loaded once (one job per seed: a job's
    start-up costs more than judging a set of 100 images)."""
    if not len(scores) == len(out_tables) == len(out_features):
        raise ValueError(f"{len(scores)} score tables for {len(out_tables)} outputs")
    limit_threads(threads, torch=True)
    model = load_classifier(Path(classifier))
    for table, out_tsv, out_npy in zip(scores, out_tables, out_features, strict=True):
        judge_images(
            scores=table,
            classifier=classifier,
            out_tsv=out_tsv,
            out_features=out_npy,
            batch_size=batch_size,
            threads=threads,
            model=model,
        )


def real_morphometry_file(*, slices: pd.DataFrame, out_tsv: Path) -> pd.DataFrame:
    """The morphometric measures of every real slice (train and test), with subject, group and
    split: the real AD-CN differences that generated sets are compared with."""
    require_columns(slices, ["subject", "group", "split", "path"], "slices table")
    require_groups(slices["group"], "slices table")
    measures = morphometry_table(load_normalised(slices["path"]))
    table = pd.concat(
        [slices[["subject", "group", "split"]].reset_index(drop=True), measures], axis=1
    )
    io.write_tsv(out_tsv, table)
    log.info("morphometry of %d real slices -> %s", len(table), out_tsv)
    return table
