"""A generator's bottleneck applied to real slices: resized to the training resolution,
encoded by the base model's VAE, decoded and resized back to the slice size, as generate_images
writes its images. Held-out reals through it are the reconstruction-ceiling sets of the
evaluation (``brainmr.evaluate.ceiling``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainmr import GROUPS, SLICE_SIZE, io
from brainmr.diffusion.common import (
    device_and_dtype,
    resize_image,
    rgb_to_gray,
    slices_to_pixels,
)
from brainmr.io import load_image, require_columns, require_groups
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)


def through_vae(slices: np.ndarray, vae, resolution: int, batch_size: int = 16) -> np.ndarray:
    """(n, H, W) slices in [0, 1] -> resized to ``resolution``, encoded (posterior mean),
    decoded, grayscale and resized back to the slice size as generate_images writes them."""
    device, dtype = vae.device, vae.dtype
    out = []
    with torch.no_grad():
        for start in range(0, len(slices), batch_size):
            pixels = slices_to_pixels(slices[start : start + batch_size], resolution)
            latent = vae.encode(pixels.to(device, dtype)).latent_dist.mean
            decoded = vae.decode(latent).sample.float().cpu()
            rgb = ((decoded + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).numpy()
            out += [resize_image(g, SLICE_SIZE).clip(0.0, 1.0) for g in rgb_to_gray(rgb)]
    return np.stack(out) if out else np.zeros((0, SLICE_SIZE, SLICE_SIZE), np.float32)


def load_vae(base_model: str, mixed_precision: str = "no"):
    """The base model's VAE (a diffusers folder or hub id with a ``vae`` subfolder)."""
    from diffusers import AutoencoderKL

    device, dtype = device_and_dtype(mixed_precision)
    return AutoencoderKL.from_pretrained(str(base_model), subfolder="vae", dtype=dtype).to(device)


def write_ceiling_sets(
    *,
    base_model: str,
    test: pd.DataFrame,
    resolution: int,
    condition: str,
    out_dirs: dict[str, Path],
    mixed_precision: str = "no",
    threads: int = 1,
) -> None:
    """One folder per class of held-out real slices (``test``: subject, group, path) through the
    base's VAE at ``resolution``: 8-bit PNGs and manifest.tsv (file, subject, condition, group),
    like a generated set, so that the same scoring reads them; ``condition`` names the sets
    (brainmr.evaluate.ceiling)."""
    require_columns(test, ["subject", "group", "path"], "held-out slices table")
    require_groups(test["group"], "held-out slices table")
    if set(out_dirs) != set(GROUPS):
        raise ValueError(f"ceiling sets need one folder per class {GROUPS}, got {sorted(out_dirs)}")
    limit_threads(threads, torch=True)
    vae = load_vae(base_model, mixed_precision).eval()
    for group in GROUPS:
        rows = test[test["group"] == group].sort_values("subject")
        if rows.empty:
            raise ValueError(f"no held-out {group} slices to take through the VAE ({condition})")
        images = through_vae(np.stack([load_image(p) for p in rows["path"]]), vae, resolution)
        with io.atomic_dir(out_dirs[group]) as tmp:
            names = [f"{condition}_{group}_{s}.png" for s in rows["subject"]]
            for name, image in zip(names, images, strict=True):
                io.save_png_gray(Path(tmp) / name, image)
            manifest = pd.DataFrame({"file": names, "subject": rows["subject"].to_numpy()}).assign(
                condition=condition, group=group
            )
            io.write_tsv(Path(tmp) / "manifest.tsv", manifest)
        log.info(
            "%d held-out %s slices through %s -> %s", len(rows), group, condition, out_dirs[group]
        )
