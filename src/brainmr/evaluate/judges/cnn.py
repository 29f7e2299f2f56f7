"""The one small 2-D CNN of the evaluation: its network (SliceCNN), augmentation, BatchNorm
recalibration, one training loop with early stopping (``fit_network``, parametrised by the loss)
and batched inference. The AD/CN classifier (brainmr.evaluate.judges.classifier) and the attribute
judges (brainmr.evaluate.studies.attributes) are this network with their own head and loss.

The model reads every image at ``input_size`` (an antialiased resize in its first step, after
augmentation at the slice size): the slice size by default; the generator's resolution where that
is lower, so that a generator is judged on anatomy, not on detail it cannot produce.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainmr import LABELS, SLICE_SIZE
from brainmr.evaluate.config import ClassifierConfig
from brainmr.logs import progress

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
def _mean_loss(model, x, y, loss, denominator, batch_size, device) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        total += loss(model(xb), yb, reduction="sum").item()
    return total / denominator(y)


def fit_network(
    make_model: Callable[[], nn.Module],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    loss: Callable,
    denominator: Callable,
    cfg: ClassifierConfig,
    device: torch.device,
    what: str,
) -> tuple[nn.Module, dict]:
    """Train ``make_model()`` on (images, targets) with ``loss(outputs, targets, reduction)``,
    AdamW, augmentation and BatchNorm recalibration each epoch, early stopping on the validation
    loss (summed, over ``denominator(targets)``; the training loss where there is no validation
    set). Returns the best model (eval mode) and its history."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = make_model().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.cnn_learning_rate, weight_decay=1e-4)
    x, y = to_tensor(train[0]), torch.from_numpy(np.asarray(train[1]))
    xv, yv = to_tensor(val[0]), torch.from_numpy(np.asarray(val[1]))
    has_val = len(xv) > 0
    history: list[dict] = []
    best = {"loss": math.inf, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    for epoch in progress(range(1, cfg.cnn_epochs + 1), desc=f"{what} epochs", unit="epoch"):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        train_loss = 0.0
        for start in range(0, len(x), cfg.cnn_batch_size):
            idx = order[start : start + cfg.cnn_batch_size]
            xb = augment(x[idx], generator).to(device)
            batch_loss = loss(model(xb), y[idx].to(device))
            optimiser.zero_grad()
            batch_loss.backward()
            optimiser.step()
            train_loss += batch_loss.item() * len(idx)
        train_loss /= len(x)
        recalibrate_batchnorm(model, x, cfg.cnn_batch_size, device)
        monitor = (
            _mean_loss(model, xv, yv, loss, denominator, cfg.cnn_batch_size, device)
            if has_val
            else train_loss
        )
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": monitor})
        if monitor < best["loss"] - 1e-4:
            best = {"loss": monitor, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= cfg.cnn_patience:
            log.info("%s: early stop at epoch %d (best %d)", what, epoch, best["epoch"])
            break
    model.load_state_dict(best["state"])
    model.eval()
    return model, {
        "best_epoch": best["epoch"],
        "best_monitor_loss": best["loss"],
        "monitor": "val_loss" if has_val else "train_loss",
        "epochs_run": len(history),
        "history": history,
    }


def batched(model, images, batch_size, fn) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    x = to_tensor(images)
    out = [fn(model, x[s : s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0,))


def nan_to_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj
