"""A small 2-D AD/CN CNN trained on the real training slices (paper 2.3, 2).

Subject-level validation split of the training subjects (early stopping on the class-weighted
validation loss), augmentation by small random shifts, rotations and intensity scaling; accuracy,
balanced accuracy and ROC AUC on the held-out test split. Its penultimate layer (the globally
pooled features) serves as the feature space of the fidelity/diversity metrics.

Its figures (ROC, reliability) are drawn by brainmr.report.classifier from what
``train_classifier`` returns.

The model reads every image at ``input_size`` (an antialiased resize in its first step, after
augmentation at the slice size): the slice size by default; the generator's resolution where that
is lower, so that a generator is judged on anatomy, not on detail it cannot produce.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score
from torch import nn

from brainmr import GROUPS, LABELS, SLICE_SIZE, io
from brainmr.evaluate.balance import split_balance
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.stats import (
    AD,
    CN,
    THRESHOLD,
    ad_labels,
    bootstrap_binary_metrics,
    reliability_table,
)
from brainmr.io import require_columns, require_groups
from brainmr.logs import progress
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

# Architecture (not config: changing it changes what "the classifier" is; saved with the model).
DEFAULT_ARCH = {"channels": [16, 32, 64, 64], "dropout": 0.2}
MAX_SHIFT_PX = 8
MAX_ROTATION_DEG = 5.0
INTENSITY_RANGE = (0.9, 1.1)


class SliceCNN(nn.Module):
    """Resize to ``input_size``, strided 5x5 stem, conv-BN-ReLU-maxpool blocks, global average
    pooling, linear head."""

    def __init__(self, channels: list[int], dropout: float, input_size: int = SLICE_SIZE) -> None:
        super().__init__()
        smallest = 4 * 2 ** (len(channels) - 1)  # the stem halves twice, each later block once
        if input_size < smallest:
            raise ValueError(
                f"evaluate.cnn_input_size {input_size}: the CNN's {len(channels)} levels need "
                f"images of at least {smallest} px"
            )
        self.input_size = input_size
        layers: list[nn.Module] = [
            nn.Conv2d(1, channels[0], 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], len(LABELS)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: globally pooled activations of the last block."""
        size = (self.input_size, self.input_size)
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random small rotation + shift (one affine warp) and intensity scaling, per image."""
    n, _, h, w = batch.shape
    rand = torch.rand(n, 4, generator=generator).to(batch.device)
    angle = (rand[:, 0] * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    shift = (rand[:, 1:3] * 2 - 1) * (2.0 * MAX_SHIFT_PX / w)  # normalised grid units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    warped = F.grid_sample(batch, grid, padding_mode="zeros", align_corners=False)
    low, high = INTENSITY_RANGE
    scale = (low + rand[:, 3] * (high - low)).view(n, 1, 1, 1)
    return (warped * scale).clamp(0.0, 1.0)


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights (n / (2 n_c)), so the 3:4 AD:CN imbalance does not bias the CNN."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    weights = len(labels) / (len(LABELS) * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> None:
    """Recompute BatchNorm running statistics as exact averages over the (unaugmented) training
    slices under the current weights. With few slices and a moving average, the running
    statistics lag the weights and eval-mode outputs drift from training-mode ones."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for start in range(0, len(x), batch_size):
        model(x[start : start + batch_size].to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def _mean_loss(model, x, y, weights, batch_size, device) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        total += F.cross_entropy(model(xb), yb, weight=weights, reduction="sum").item()
    return total / float(weights.cpu()[y].sum())


def fit_cnn(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    cfg: ClassifierConfig,
    arch: dict | None = None,
    device: torch.device | None = None,
) -> tuple[SliceCNN, dict]:
    """Train with early stopping on the validation loss (the training loss if no validation
    set); returns the best model and its history. Labels: 1 = AD, 0 = CN."""
    arch = dict(arch or DEFAULT_ARCH) | {"input_size": cfg.cnn_input_size or SLICE_SIZE}
    device = device or pick_device()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = SliceCNN(**arch).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.cnn_learning_rate, weight_decay=1e-4)
    weights = class_weights(train_labels).to(device)
    x, y = to_tensor(train_images), torch.from_numpy(train_labels.astype(np.int64))
    has_val = len(val_images) > 0
    xv, yv = (to_tensor(val_images), torch.from_numpy(val_labels.astype(np.int64)))
    history: list[dict] = []
    best = {"loss": math.inf, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    for epoch in progress(range(1, cfg.cnn_epochs + 1), desc="CNN epochs", unit="epoch"):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        train_loss = 0.0
        for start in range(0, len(x), cfg.cnn_batch_size):
            idx = order[start : start + cfg.cnn_batch_size]
            xb = augment(x[idx], generator).to(device)
            loss = F.cross_entropy(model(xb), y[idx].to(device), weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            train_loss += loss.item() * len(idx)
        train_loss /= len(x)
        recalibrate_batchnorm(model, x, cfg.cnn_batch_size, device)
        monitor = (
            _mean_loss(model, xv, yv, weights, cfg.cnn_batch_size, device)
            if has_val
            else train_loss
        )
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": monitor})
        if monitor < best["loss"] - 1e-4:
            best = {"loss": monitor, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= cfg.cnn_patience:
            log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
            break
    model.load_state_dict(best["state"])
    model.eval()
    info = {
        "arch": arch,
        "best_epoch": best["epoch"],
        "best_monitor_loss": best["loss"],
        "monitor": "val_loss" if has_val else "train_loss",
        "epochs_run": len(history),
        "history": history,
        "device": str(device),
    }
    return model, info


@torch.no_grad()
def predict_proba(model: SliceCNN, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(AD) for each image of an (n, 160, 160) normalised stack."""
    return _batched(model, images, batch_size, lambda m, xb: F.softmax(m(xb), 1)[:, AD])


@torch.no_grad()
def extract_features(model: SliceCNN, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Penultimate (globally pooled) CNN features, (n, channels[-1]), for fidelity metrics."""
    return _batched(model, images, batch_size, lambda m, xb: m.embed(xb))


def _batched(model, images, batch_size, fn) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    x = to_tensor(images)
    out = [fn(model, x[s : s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0,))


def split_subjects(train: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose subject goes to validation, stratified by group; a group
    with a single subject stays entirely in training."""
    rng = np.random.default_rng(seed)
    val_subjects: set[str] = set()
    for _, rows in train.groupby("group", sort=True):
        subjects = np.array(sorted(rows["subject"].astype(str).unique()))
        if len(subjects) < 2:
            continue
        n_val = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
        val_subjects.update(rng.choice(subjects, size=n_val, replace=False))
    return train["subject"].astype(str).isin(val_subjects).to_numpy()


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
    return model.to(device or pick_device()).eval()


def _nan_to_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


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
    io.write_json(out_metrics, _nan_to_none(metrics))
    io.write_tsv(out_predictions, predictions)
    return HeldOut(test_labels, prob, metrics["roc_auc"], reliability, metrics["brier"])
