"""Per-image scores: KDE log-likelihoods, CNN P(AD), nearest training slice. Every number in
Table 1 and metrics.csv is computed from the TSVs written here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainmr import io
from brainmr.evaluate.classifier import load_classifier, predict_proba
from brainmr.evaluate.config import EvaluateConfig
from brainmr.evaluate.images import flatten, load_normalised, require_columns, require_groups
from brainmr.evaluate.kde import load_kde

log = logging.getLogger(__name__)

SCORE_COLUMNS = [
    "path",
    "file",
    "condition",
    "group",
    "loglik_AD",
    "loglik_CN",
    "prob_AD",
    "predicted",
    "nn_corr",
    "nn_path",
]


def standardise_rows(pixels: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm rows, so a dot product is a Pearson correlation (flat rows -> 0)."""
    centred = pixels - pixels.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def nearest_neighbours(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and Pearson correlation of each query row's most correlated reference row."""
    corr = standardise_rows(query) @ standardise_rows(reference).T
    index = np.argmax(corr, axis=1)
    return index, corr[np.arange(len(query)), index].astype(np.float64)


def score_images(
    *,
    images: pd.DataFrame,
    kde_model: Path,
    classifier: Path,
    train: pd.DataFrame,
    out_tsv: Path,
    cfg: EvaluateConfig,
    threads: int = 1,
) -> None:
    """Score each image (columns path, condition, group; .png or .npy) against the KDEs, the CNN
    and the training slices (columns path, group); one output row per image."""
    require_columns(images, ["path", "condition", "group"], "images table")
    require_columns(train, ["path", "group"], "training table")
    require_groups(images["group"], "images table")
    if images.empty:
        raise ValueError("images table is empty: nothing to score")
    torch.set_num_threads(max(1, threads))
    stack = load_normalised(images["path"])
    pixels = flatten(stack)
    loglik = load_kde(Path(kde_model)).score(pixels)
    prob = predict_proba(load_classifier(Path(classifier)), stack, cfg.cnn_batch_size)
    train_paths = train["path"].astype(str).to_numpy()
    nn_index, nn_corr = nearest_neighbours(pixels, flatten(load_normalised(train_paths)))
    scores = pd.DataFrame(
        {
            "path": images["path"].astype(str).to_numpy(),
            "file": [Path(p).name for p in images["path"]],
            "condition": images["condition"].astype(str).to_numpy(),
            "group": images["group"].astype(str).to_numpy(),
            "loglik_AD": loglik["AD"],
            "loglik_CN": loglik["CN"],
            "prob_AD": prob,
            "predicted": np.where(prob >= 0.5, "AD", "CN"),
            "nn_corr": nn_corr,
            "nn_path": train_paths[nn_index],
        }
    )
    log.info("scored %d images -> %s", len(scores), out_tsv)
    io.write_tsv(out_tsv, scores[SCORE_COLUMNS])
