"""Validation images during DreamBooth: every N steps a small grid per instance prompt from the
model being trained, so that a cluster user sees what it draws long before the generate step."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from brainmr import io
from brainmr.diffusion.generate import sample_images

VALIDATION_SEED = 424242  # the same noise at every step, so grids compare across steps


def validation_prompts(prompts: list[str], groups: list[str], per_class: int = 2) -> list[str]:
    """The instance prompts validation grids are drawn for: every one for fixed prompts (one per
    class); with templates (a prompt per age bin and sex), the first ``per_class`` of each class,
    so that validation's cost does not grow with the cohort."""
    chosen: set[str] = set()
    for group in sorted(set(groups)):
        ours = sorted({p for p, g in zip(prompts, groups, strict=True) if g == group})
        chosen.update(ours[:per_class])
    return sorted(chosen)


def validation_grid(pipe, prompts: list[str], *, n_images: int, gen_cfg, resolution: int):
    """(len(prompts), n_images, R, R) grayscale images, image j of every prompt from seed
    VALIDATION_SEED + j, with the generate section's steps and guidance."""
    seeds = [VALIDATION_SEED + j for j in range(n_images)]
    return np.stack(
        [
            sample_images(
                pipe,
                prompt=prompt,
                seeds=seeds,
                num_inference_steps=gen_cfg.num_inference_steps,
                guidance_scale=gen_cfg.guidance_scale,
                resolution=resolution,
            )
            for prompt in prompts
        ]
    )


def save_grid(folder: Path, step: int, grid: np.ndarray, prompts: list[str]) -> Path:
    """One step's grid as step-N.npz (images and prompts), for the figure."""
    path = Path(folder) / f"step-{step:06d}.npz"
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=grid, prompts=np.array(prompts))
    return path


def validation_figure(folder: Path, out_png: Path, max_step: int) -> None:
    """validation.png: one row per (step, prompt), up to ``max_step``, with a label on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = sorted(
        (int(re.search(r"step-(\d+)", p.name).group(1)), p) for p in Path(folder).glob("step-*.npz")
    )
    rows = []
    for step, path in grids:
        if step <= max_step:
            with np.load(path, allow_pickle=False) as data:
                rows += [
                    (step, str(p), imgs)
                    for p, imgs in zip(data["prompts"], data["images"], strict=True)
                ]
    if not rows:
        raise ValueError(f"{folder}: no validation grids to show")
    n = rows[0][2].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.4 * n + 2.2, 1.4 * len(rows)), squeeze=False)
    for r, (step, prompt, images) in enumerate(rows):
        for j in range(n):
            axes[r, j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
        axes[r, 0].set_ylabel(f"step {step}\n{prompt}", fontsize=7, rotation=0, ha="right")
    fig.suptitle("DreamBooth validation images (fixed seeds)", fontsize=9)
    fig.tight_layout()
    io.save_figure(out_png, fig)
