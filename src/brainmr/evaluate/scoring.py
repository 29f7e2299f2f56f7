"""Per-image scores: KDE log-likelihoods, CNN P(AD), nearest training slice (correlation inside
the brain mask), and the morphometric judge's measures (brain area, CSF fraction, ventricles).
Every number in Table 1 and metrics.csv is computed from the TSVs written here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import io
from brainmr.evaluate.classifier import load_classifier, predict_proba
from brainmr.evaluate.images import flatten, load_normalised
from brainmr.evaluate.kde import load_kde
from brainmr.evaluate.metrics import brain_mask, masked_nearest_neighbours
from brainmr.evaluate.morphometry import MEASURES, morphometry_table
from brainmr.evaluate.stats import THRESHOLD
from brainmr.io import require_columns, require_groups
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

SCORE_COLUMNS = [
    "path",
    "file",
    "condition",
    "group",
    "subject",
    "loglik_AD",
    "loglik_CN",
    "prob_AD",
    "predicted",
    "nn_corr",
    "nn_path",
    *MEASURES,
]


def score_images(
    *,
    images: pd.DataFrame,
    kde_model: Path,
    classifier: Path,
    train: pd.DataFrame,
    out_tsv: Path,
    batch_size: int = 64,
    threads: int = 1,
) -> None:
    """Score each image (columns path, condition, group; .png or .npy) against the KDEs, the CNN
    and the training slices (columns path, group); one output row per image."""
    require_columns(images, ["path", "condition", "group"], "images table")
    require_columns(train, ["path", "group"], "training table")
    require_groups(images["group"], "images table")
    if images.empty:
        raise ValueError("images table is empty: nothing to score")
    limit_threads(threads, torch=True)
    stack = load_normalised(images["path"])
    pixels = flatten(stack)
    loglik = load_kde(Path(kde_model)).score(pixels)
    prob = predict_proba(load_classifier(Path(classifier)), stack, batch_size)
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
            "prob_AD": prob,
            "predicted": np.where(prob >= THRESHOLD, "AD", "CN"),
            "nn_corr": nn_corr,
            "nn_path": train_paths[nn_index],
        }
    )
    scores = pd.concat([scores, morphometry_table(stack).reset_index(drop=True)], axis=1)
    log.info("scored %d images -> %s", len(scores), out_tsv)
    io.write_tsv(out_tsv, scores[SCORE_COLUMNS])


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
