"""A small 2-D AD/CN CNN trained on the real training slices (paper 2.3, 2).

Subject-level validation split of the training subjects (early stopping on the class-weighted
validation loss), augmentation by small random shifts, rotations and intensity scaling; accuracy,
balanced accuracy and ROC AUC on the held-out test split. Its penultimate layer (the globally
pooled features) serves as the feature space of the fidelity/diversity metrics.

Its figures (ROC, reliability) are drawn by brainmr.report.classifier from what
``train_classifier`` returns.

The network, its augmentation and training loop are brainmr.evaluate.judges.cnn's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from brainmr import GROUPS, LABELS, SLICE_SIZE, io
from brainmr.device import best_device
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.cnn import (
    DEFAULT_ARCH,
    SliceCNN,
    batched,
    fit_network,
    nan_to_none,
    to_tensor,
)
from brainmr.evaluate.stats.balance import split_balance
from brainmr.evaluate.stats.binary import (
    AD,
    CN,
    THRESHOLD,
    ad_labels,
    bootstrap_binary_metrics,
    reliability_table,
)
from brainmr.io import require_columns, require_groups
from brainmr.splits import stratified_subjects
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights (n / (2 n_c)), so the 3:4 AD:CN imbalance does not bias the CNN."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    weights = len(labels) / (len(LABELS) * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def fit_cnn(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    cfg: ClassifierConfig,
    arch: dict | None = None,
    device: torch.device | None = None,
) -> tuple[SliceCNN, dict]:
    """The AD/CN network (brainmr.evaluate.judges.cnn.fit_network) with the class-weighted cross
    entropy; its validation loss is the class-weighted mean. Labels: 1 = AD, 0 = CN."""
    arch = dict(arch or DEFAULT_ARCH) | {"input_size": cfg.cnn_input_size or SLICE_SIZE}
    device = device or best_device()
    weights = class_weights(train_labels).to(device)

    def loss(outputs, targets, reduction="mean"):
        return F.cross_entropy(outputs, targets, weight=weights, reduction=reduction)

    model, info = fit_network(
        lambda: SliceCNN(**arch),
        (train_images, train_labels.astype(np.int64)),
        (val_images, val_labels.astype(np.int64)),
        loss,
        lambda targets: float(weights.cpu()[targets].sum()),
        cfg,
        device,
        "CNN",
    )
    return model, {"arch": arch} | info | {"device": str(device)}


@torch.no_grad()
def predict_proba(model: SliceCNN, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(AD) for each image of an (n, 160, 160) normalised stack."""
    return batched(model, images, batch_size, lambda m, xb: F.softmax(m(xb), 1)[:, AD])


@torch.no_grad()
def judge_stack(model: SliceCNN, images: np.ndarray, batch_size: int = 64):
    """P(AD) and the penultimate features of each image, one forward pass per batch (the head
    on the features is the model's forward: the same numbers as predict_proba's)."""
    model.eval()
    device = next(model.parameters()).device
    x = to_tensor(images)
    probs, features = [], []
    for start in range(0, len(x), batch_size):
        embedded = model.embed(x[start : start + batch_size].to(device))
        probs.append(F.softmax(model.head(embedded), 1)[:, AD].cpu())
        features.append(embedded.cpu())
    if not probs:
        return np.zeros((0,)), np.zeros((0, model.head[-1].in_features))
    as_numpy = [torch.cat(part).numpy().astype(np.float64) for part in (probs, features)]
    return as_numpy[0], as_numpy[1]


@torch.no_grad()
def extract_features(model: SliceCNN, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Penultimate (globally pooled) CNN features, (n, channels[-1]), for fidelity metrics."""
    return batched(model, images, batch_size, lambda m, xb: m.embed(xb))


def split_subjects(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose subject goes to validation, stratified by group
    (brainmr.splits: the cohort's test split is drawn the same way); a group with a single
    subject stays entirely in training."""
    return train["subject"].astype(str).isin(stratified_subjects(train, fraction, seed)).to_numpy()


def binary_metrics(labels: np.ndarray, prob_ad: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, ROC AUC (None if one class only), confusion [AD, CN]."""
    predicted = (prob_ad >= THRESHOLD).astype(int)
    both = len(np.unique(labels)) == 2
    matrix = confusion_matrix(labels, predicted, labels=[AD, CN])  # rows true, cols predicted
    return {
        "accuracy": float(np.mean(predicted == labels)),
        # the mean recall of the classes present (one class alone: its recall)
        "balanced_accuracy": float(
            balanced_accuracy_score(labels, predicted) if both else np.mean(predicted == labels)
        ),
        "roc_auc": float(roc_auc_score(labels, prob_ad)) if both else None,
        "confusion_matrix": {
            "labels": [LABELS[AD], LABELS[CN]],
            "rows": "true",
            "columns": "predicted",
            "matrix": matrix.tolist(),
        },
        "threshold": THRESHOLD,
    }


def save_classifier(path: Path, model: SliceCNN, info: dict) -> None:
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "arch": info["arch"],
        "classes": list(LABELS),
        "best_epoch": info["best_epoch"],
    }
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_classifier(path: Path, device: torch.device | None = None) -> SliceCNN:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload or "arch" not in payload:
        raise ValueError(f"{path}: not a brainmr classifier (state_dict + arch expected)")
    model = SliceCNN(**payload["arch"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device or best_device()).eval()


@dataclass(frozen=True)
class HeldOut:
    """The trained CNN on the held-out test split: what its figures draw (ROC and reliability,
    brainmr.report.classifier)."""

    labels: np.ndarray  # 0/1, brainmr.LABELS (1 = AD)
    prob_ad: np.ndarray  # P(AD)
    roc_auc: float | None
    reliability: pd.DataFrame  # stats.reliability_table
    brier: float


def train_classifier(
    *,
    scans: pd.DataFrame,
    out_model: Path,
    out_metrics: Path,
    out_predictions: Path,
    cfg: ClassifierConfig,
    threads: int = 1,
) -> HeldOut:
    """Train on split == train (validation by subject), report on split == test; returns the
    test predictions that the figures draw."""
    require_columns(scans, ["subject", "group", "split", "path"], "classifier scans table")
    require_groups(scans["group"], "classifier scans table")
    bad_split = sorted(set(scans["split"]) - {"train", "test"})
    if bad_split:
        raise ValueError(f"classifier scans table: unknown split value(s) {bad_split}")
    limit_threads(threads, torch=True)
    train = scans[scans["split"] == "train"].reset_index(drop=True)
    test = scans[scans["split"] == "test"].reset_index(drop=True)
    missing = sorted(set(GROUPS) - set(train["group"]))
    if missing:
        raise ValueError(f"classifier scans table: the train split has no {missing} slices")
    if test.empty:
        raise ValueError("classifier scans table: the test split is empty")
    is_val = split_subjects(train, cfg.cnn_val_fraction, cfg.seed)
    labels = ad_labels(train["group"])
    images = load_normalised(train["path"])
    model, info = fit_cnn(
        images[~is_val], labels[~is_val], images[is_val], labels[is_val], cfg, device=None
    )
    test_labels = ad_labels(test["group"])
    prob = predict_proba(model, load_normalised(test["path"]), cfg.cnn_batch_size)
    metrics = binary_metrics(test_labels, prob)
    counts = {
        f"n_{part}_{g}": int(np.sum(frame["group"] == g))
        for part, frame in (("fit", train[~is_val]), ("val", train[is_val]), ("test", test))
        for g in GROUPS
    }
    metrics |= counts | {k: v for k, v in info.items() if k != "history"}
    # the guard of set_metrics counts these as reals the CNN did not train on
    metrics["val_subjects"] = sorted(train.loc[is_val, "subject"].astype(str).unique())
    # Intervals: a handful of test subjects gives a wide one, and the reader must see how wide.
    boot = bootstrap_binary_metrics(test_labels, prob, n_boot=cfg.n_bootstrap, seed=cfg.seed)
    metrics |= {f"bootstrap_{k}": v for k, v in boot.items()} | {"brier": boot["brier"]}
    reliability = reliability_table(test_labels, prob)
    metrics["reliability"] = reliability.to_dict(orient="records")
    metrics["split_balance"] = split_balance(train, test)
    for warning in metrics["split_balance"]["warnings"]:
        log.warning("train/test split: %s", warning)
    metrics |= {"seed": cfg.seed, "history": info["history"]}
    log.info(
        "CNN test: accuracy %.3f, balanced %.3f, AUC %s",
        metrics["accuracy"],
        metrics["balanced_accuracy"],
        metrics["roc_auc"],
    )
    predictions = test[["subject", "group", "path"]].assign(
        prob_AD=prob, predicted=np.where(prob >= THRESHOLD, "AD", "CN")
    )
    predictions["correct"] = predictions["predicted"] == predictions["group"]
    save_classifier(out_model, model, info)
    io.write_json(out_metrics, nan_to_none(metrics))
    io.write_tsv(out_predictions, predictions)
    return HeldOut(test_labels, prob, metrics["roc_auc"], reliability, metrics["brier"])
