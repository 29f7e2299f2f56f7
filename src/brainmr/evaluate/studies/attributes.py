"""Instruction judges: an age regressor and a sex classifier read from a slice, trained on the real
training slices of both classes pooled, so generated images can be checked against the age and
sex their prompt asked for (as Pinaya et al. 2022 checked brain volumes against theirs).

Both reuse the AD/CN CNN's pieces (brainmr.evaluate.judges.classifier): the SliceCNN backbone with a
one-output head, its augmentation, subject-level validation split, BatchNorm recalibration and
early stopping on the validation loss. Age is regressed standardised by the fitting slices' mean
and sd (MSE); sex is a logit of P(M) (BCE, M = 1). Their calibration on the held-out reals says
how far a judge can be trusted before it judges anything generated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from brainmr import SEXES, SLICE_SIZE, io
from brainmr.device import best_device
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.classifier import split_subjects
from brainmr.evaluate.judges.cnn import DEFAULT_ARCH, SliceCNN, fit_network, nan_to_none, to_tensor
from brainmr.evaluate.stats.binary import bootstrap_binary_metrics
from brainmr.evaluate.studies.following import follow_figures
from brainmr.io import require_columns, require_groups
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

KIND = "brainmr attribute judges"
PREDICTION_COLUMNS = ["predicted_age", "prob_M"]


@dataclass
class AttributeJudges:
    """The two judges and the age standardisation that maps the regressor's output to years."""

    age_model: SliceCNN
    sex_model: SliceCNN
    age_mean: float
    age_sd: float


def judge_net(arch: dict) -> SliceCNN:
    """The SliceCNN backbone with a single output (a standardised age or a logit of P(M))."""
    model = SliceCNN(**arch)
    model.head[-1] = nn.Linear(arch["channels"][-1], 1)
    return model


def fit_judge(
    images: np.ndarray,
    targets: np.ndarray,
    is_val: np.ndarray,
    loss_fn: Callable,
    cfg: ClassifierConfig,
    arch: dict,
    device: torch.device,
    what: str,
) -> tuple[SliceCNN, dict]:
    """Fit a one-output SliceCNN (brainmr.evaluate.judges.cnn.fit_network) on the rows not in
    ``is_val`` with ``loss_fn`` (an F.* loss taking ``reduction``) on its single output, early
    stopping on the validation rows' mean loss."""
    targets, is_val = np.asarray(targets, dtype=np.float32), np.asarray(is_val, dtype=bool)

    def loss(outputs, y, reduction="mean"):
        return loss_fn(outputs.squeeze(1), y, reduction=reduction)

    model, info = fit_network(
        lambda: judge_net(arch),
        (images[~is_val], targets[~is_val]),
        (images[is_val], targets[is_val]),
        loss,
        lambda y: max(len(y), 1),
        cfg,
        device,
        what,
    )
    return model, {k: info[k] for k in ("best_epoch", "best_monitor_loss", "epochs_run", "history")}


def check_attributes(scans: pd.DataFrame, what: str) -> pd.DataFrame:
    """Numeric ``age`` and ``sex`` in F/M on every row (stripped), or an error naming the
    subject."""
    require_columns(scans, ["subject", "age", "sex"], what)
    ages = pd.to_numeric(scans["age"], errors="coerce")
    bad_age = scans.loc[~np.isfinite(ages.to_numpy(float)), "subject"].astype(str)
    if len(bad_age):
        raise ValueError(f"{what}: missing or non-numeric age for subject(s) {sorted(bad_age)}")
    sex = scans["sex"].astype(str).str.strip()
    bad_sex = scans.loc[~sex.isin(SEXES)]
    if len(bad_sex):
        found = [f"{r.subject}: {r.sex!r}" for r in bad_sex.itertuples()]
        raise ValueError(f"{what}: sex must be F or M; got {', '.join(found)}")
    return scans.assign(age=ages.astype(float), sex=sex)


def calibration(
    group: str, age: np.ndarray, sex: np.ndarray, predicted: pd.DataFrame, cfg: ClassifierConfig
) -> dict:
    """The judges against the true age and sex: follow_figures plus the sex AUC (bootstrap)."""
    row = {"group": group}
    row |= follow_figures(
        age, predicted["predicted_age"], sex, predicted["prob_M"], cfg.n_bootstrap, cfg.seed
    )
    boot = bootstrap_binary_metrics(
        (sex == "M").astype(int), predicted["prob_M"], n_boot=cfg.n_bootstrap, seed=cfg.seed
    )
    return row | {f"sex_{k}": boot[k] for k in ("auc", "auc_low", "auc_high")}


def train_attribute_judges(
    *,
    scans: pd.DataFrame,
    out_model: Path,
    out_metrics: Path,
    cfg: ClassifierConfig,
    threads: int = 1,
    arch: dict | None = None,
) -> None:
    """Train both judges on split == train (validation by subject, both groups pooled); write
    them to one file and their calibration on split == test (per group and pooled) as JSON.
    ``arch``: the backbone (DEFAULT_ARCH unless a test wants a smaller one)."""
    what = "attribute judges' scans table"
    require_columns(scans, ["subject", "group", "split", "path", "age", "sex"], what)
    require_groups(scans["group"], what)
    bad_split = sorted(set(scans["split"]) - {"train", "test"})
    if bad_split:
        raise ValueError(f"{what}: unknown split value(s) {bad_split}")
    scans = check_attributes(scans, what)
    limit_threads(threads, torch=True)
    train = scans[scans["split"] == "train"].reset_index(drop=True)
    test = scans[scans["split"] == "test"].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(f"{what}: the train and test splits must both have slices")
    is_val = split_subjects(train, cfg.cnn_val_fraction, cfg.seed)
    fit_age = train.loc[~is_val, "age"].to_numpy(float)
    age_mean, age_sd = float(fit_age.mean()), float(fit_age.std())
    if not age_sd > 0:
        raise ValueError(f"{what}: every fitting slice has age {age_mean:g}; nothing to learn")
    arch = dict(arch or DEFAULT_ARCH) | {"input_size": cfg.cnn_input_size or SLICE_SIZE}
    device = best_device()
    images = load_normalised(train["path"])
    age_target = (train["age"].to_numpy(float) - age_mean) / age_sd
    sex_target = (train["sex"] == "M").to_numpy(float)
    age_model, age_info = fit_judge(
        images, age_target, is_val, F.mse_loss, cfg, arch, device, "age judge"
    )
    sex_model, sex_info = fit_judge(
        images,
        sex_target,
        is_val,
        F.binary_cross_entropy_with_logits,
        cfg,
        arch,
        device,
        "sex judge",
    )
    judges = AttributeJudges(age_model, sex_model, age_mean, age_sd)
    predicted = predict_attributes(judges, load_normalised(test["path"]), cfg.cnn_batch_size)
    rows = []
    for group in [*sorted(test["group"].unique()), "all"]:
        keep = (test["group"] == group).to_numpy() if group != "all" else np.ones(len(test), bool)
        part = test[keep]
        rows.append(
            calibration(
                group,
                part["age"].to_numpy(float),
                part["sex"].to_numpy(str),
                predicted[keep].reset_index(drop=True),
                cfg,
            )
        )
    metrics = {
        "calibration": rows,
        "arch": arch,
        "age_mean": age_mean,
        "age_sd": age_sd,
        "age": age_info,
        "sex": sex_info,
        "n_fit": int((~is_val).sum()),
        "n_val": int(is_val.sum()),
        "n_test": len(test),
        "val_subjects": sorted(train.loc[is_val, "subject"].astype(str).unique()),
        "seed": cfg.seed,
        "device": str(device),
    }
    pooled = rows[-1]
    log.info(
        "attribute judges, held-out reals: age r %.2f, MAE %.1f y; sex accuracy %.2f",
        pooled["age_r"],
        pooled["age_mae"],
        pooled["sex_accuracy"],
    )
    save_attribute_judges(out_model, judges, arch)
    io.write_json(out_metrics, nan_to_none(metrics))


def save_attribute_judges(path: Path, judges: AttributeJudges, arch: dict) -> None:
    def state(model: nn.Module) -> dict:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}

    payload = {
        "kind": KIND,
        "arch": arch,
        "age_state_dict": state(judges.age_model),
        "sex_state_dict": state(judges.sex_model),
        "age_mean": judges.age_mean,
        "age_sd": judges.age_sd,
    }
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_attribute_judges(path: Path, device: torch.device | None = None) -> AttributeJudges:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise ValueError(f"{path}: not a file of brainmr attribute judges")
    device = device or best_device()
    models = []
    for name in ("age", "sex"):
        model = judge_net(payload["arch"])
        model.load_state_dict(payload[f"{name}_state_dict"])
        models.append(model.to(device).eval())
    return AttributeJudges(*models, float(payload["age_mean"]), float(payload["age_sd"]))


@torch.no_grad()
def predict_attributes(
    judges: AttributeJudges, images: np.ndarray, batch_size: int = 64
) -> pd.DataFrame:
    """Predicted age (years) and P(M) of each image of a normalised (n, H, W) stack."""
    x = to_tensor(images)
    out = {}
    for column, model in (("predicted_age", judges.age_model), ("prob_M", judges.sex_model)):
        model.eval()
        device = next(model.parameters()).device
        parts = [
            model(x[start : start + batch_size].to(device)).squeeze(1).cpu()
            for start in range(0, len(x), batch_size)
        ]
        out[column] = torch.cat(parts) if parts else torch.zeros(0)
    out["predicted_age"] = out["predicted_age"] * judges.age_sd + judges.age_mean
    out["prob_M"] = torch.sigmoid(out["prob_M"])
    out = {k: v.numpy().astype(np.float64) for k, v in out.items()}
    return pd.DataFrame(out, columns=PREDICTION_COLUMNS)
