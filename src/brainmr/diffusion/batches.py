"""What DreamBooth trains on and in which order: the instance set (slices, whole prompts,
classes; checked and hashed) and the batch order, a pure function of (seed, step), so that a
resumed run draws the batches an uninterrupted one would have."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainmr import io

REQUIRED_COLUMNS = ("path", "group", "prompt", "subject")


@dataclass(frozen=True)
class InstanceSet:
    slices: np.ndarray  # (N, H, W) float32 in [0, 1]
    prompts: list[str]  # one whole prompt per slice, commas and all
    groups: list[str]
    subjects: list[str]
    digest: str  # sha256 of the prompts, groups and slice contents, in order


def load_instance_set(instances: pd.DataFrame) -> InstanceSet:
    """Read and check the instance slices; errors name the file and the subject."""
    missing = [c for c in REQUIRED_COLUMNS if c not in instances.columns]
    if missing:
        raise ValueError(f"instance table lacks columns {missing} (has {list(instances.columns)})")
    if instances.empty:
        raise ValueError("instance table is empty: no slices to train on")
    digest = hashlib.sha256()
    slices = []
    for row in instances.itertuples(index=False):
        where = f"instance slice {row.path} (subject {row.subject})"
        if not isinstance(row.prompt, str) or not row.prompt.strip():
            raise ValueError(f"{where}: empty prompt")
        try:
            image = io.load_npy(row.path).astype(np.float32)
        except (OSError, ValueError) as err:
            raise ValueError(f"{where}: cannot be read: {err}") from err
        if image.ndim != 2 or not np.isfinite(image).all():
            raise ValueError(f"{where}: expected a finite 2-D array, got shape {image.shape}")
        if image.min() < -1e-3 or image.max() > 1 + 1e-3:
            raise ValueError(
                f"{where}: values outside [0, 1] ({image.min():.3g}..{image.max():.3g})"
            )
        if slices and image.shape != slices[0].shape:
            raise ValueError(f"{where}: shape {image.shape} differs from {slices[0].shape}")
        slices.append(image.clip(0, 1))
        for part in (row.prompt, str(row.group), str(image.shape)):
            digest.update(part.encode() + b"\0")
        digest.update(image.tobytes())
    return InstanceSet(
        slices=np.stack(slices),
        prompts=[str(p) for p in instances["prompt"]],
        groups=[str(g) for g in instances["group"]],
        subjects=[str(s) for s in instances["subject"]],
        digest=digest.hexdigest(),
    )


def batch_indices(
    step: int, micro: int, *, n_items: int, batch_size: int, accumulation: int, seed: int
) -> np.ndarray:
    """Item indices of micro-batch ``micro`` of optimizer step ``step`` (0-based): positions in
    an endless run of epochs, each a permutation seeded by (seed, epoch). A pure function of its
    arguments, so a resumed run draws the batches an uninterrupted one would have."""
    start = (step * accumulation + micro) * batch_size
    positions = np.arange(start, start + batch_size)
    epochs = positions // n_items
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([seed, int(epoch)]).permutation(n_items)
        chosen = epochs == epoch
        out[chosen] = order[positions[chosen] % n_items]
    return out


def balanced_batch(step: int, micro: int, groups: list[str], cfg) -> np.ndarray:
    """Instance indices of one micro-batch drawn equally from every class (``class_balance:
    oversample``): each class runs through its own seeded epochs, so the smaller class is seen
    more often and AD and CN come 1:1 whatever the class sizes."""
    labels = np.asarray(groups)
    classes = sorted(set(groups))
    shares = np.full(len(classes), cfg.train_batch_size // len(classes))
    shares[: cfg.train_batch_size % len(classes)] += 1
    parts = []
    for i, (name, share) in enumerate(zip(classes, shares, strict=True)):
        members = np.flatnonzero(labels == name)
        if share == 0:
            continue
        chosen = batch_indices(
            step,
            micro,
            n_items=len(members),
            batch_size=int(share),
            accumulation=cfg.gradient_accumulation_steps,
            seed=cfg.seed + 7919 * (i + 1),
        )
        parts.append(members[chosen])
    return np.concatenate(parts)


def step_batch(
    step: int, micro: int, n_instance: int, n_class: int, cfg, groups: list[str] | None = None
) -> np.ndarray:
    """Indices into instances + class images for one micro-batch: ``train_batch_size`` instance
    items (equally from each class of ``groups`` under ``class_balance: oversample``), then as
    many class items (prior preservation) offset by ``n_instance``."""
    sizes = {"batch_size": cfg.train_batch_size, "accumulation": cfg.gradient_accumulation_steps}
    if cfg.class_balance == "oversample" and groups is not None:
        idx = balanced_batch(step, micro, groups, cfg)
    else:
        idx = batch_indices(step, micro, n_items=n_instance, seed=cfg.seed, **sizes)
    if n_class == 0:
        return idx
    prior = batch_indices(step, micro, n_items=n_class, seed=cfg.seed + 1, **sizes)
    return np.concatenate([idx, prior + n_instance])
