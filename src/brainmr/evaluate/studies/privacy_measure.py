"""The privacy study's measuring step, per attacked model (it runs in the diffusion env): the
slices' denoising losses (brainmr.diffusion.membership) and the validation images' nearest
training slices."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import SLICE_SIZE, io
from brainmr.cohort import instance_set, read_slices
from brainmr.diffusion.common import resize_image
from brainmr.diffusion.config import MembershipConfig
from brainmr.diffusion.membership import measure_membership
from brainmr.evaluate.images import flatten, load_normalised, rescale_foreground
from brainmr.evaluate.judges.metrics import brain_mask, masked_nearest_neighbours
from brainmr.instructions import InstructionConfig

STEP_COLUMNS = ["condition", "seed", "model", "step", "prompt", "image", "nn_corr", "nn_path"]


def membership_candidates(
    slices: pd.DataFrame, prompts: Mapping[str, str], instructions: InstructionConfig | None
) -> pd.DataFrame:
    """A model's members (its train slices, with the prompts it was trained on) and
    non-members (the held-out slices of its classes, with the prompts they would have had)."""
    members = instance_set(slices, dict(prompts), instructions).assign(member=True)
    others = instance_set(slices, dict(prompts), instructions, split="test").assign(member=False)
    return pd.concat([members, others], ignore_index=True)


def validation_images(validation_dir: Path) -> list[tuple[int, str, int, np.ndarray]]:
    """(step, prompt, image index, image at the slice size, 8-bit as a saved PNG) of every
    validation grid a DreamBooth run drew (step-N.npz)."""
    out = []
    for path in sorted(Path(validation_dir).glob("step-*.npz")):
        step = int(path.stem.removeprefix("step-"))
        with np.load(path) as grid:
            images, prompts = grid["images"], [str(p) for p in grid["prompts"]]
        for prompt, row in zip(prompts, images, strict=True):
            for index, image in enumerate(row):
                image = np.round(resize_image(image, SLICE_SIZE).clip(0, 1) * 255) / 255
                out.append((step, prompt, index, rescale_foreground(image.astype(np.float32))))
    return out


def validation_nearest(validation_dir: Path, train: pd.DataFrame) -> pd.DataFrame:
    """Each validation image's nearest training slice inside the brain, as scoring finds a
    generated image's (columns step, prompt, image, nn_corr, nn_path)."""
    drawn = validation_images(validation_dir)
    if not drawn:
        raise ValueError(f"{validation_dir}: no validation grids (step-*.npz) to measure")
    paths = train["path"].astype(str).to_numpy()
    reference = flatten(load_normalised(paths))
    query = flatten(np.stack([image for *_, image in drawn]))
    index, corr = masked_nearest_neighbours(query, reference, brain_mask(reference))
    return pd.DataFrame(
        {
            "step": [d[0] for d in drawn],
            "prompt": [d[1] for d in drawn],
            "image": [d[2] for d in drawn],
            "nn_corr": corr,
            "nn_path": paths[index],
        }
    )


def measure_model_privacy(
    *,
    model_dir: Path,
    slices: Path,
    prompts: Mapping[str, str],
    instructions: Mapping | None,
    validation_dir: Path | None,
    labels: Mapping[str, str],
    cfg: MembershipConfig,
    resolution: int,
    out_membership: Path,
    out_steps: Path,
    mixed_precision: str = "no",
    threads: int = 1,
) -> None:
    """One model (``labels``: condition, stage, model): its slices' denoising losses, and,
    for a trained model (``validation_dir``), its validation images' nearest training slices."""
    table = read_slices(slices)
    candidates = membership_candidates(
        table, prompts, InstructionConfig(**instructions) if instructions else None
    )
    losses = measure_membership(
        model_dir=Path(model_dir),
        candidates=candidates,
        cfg=cfg,
        resolution=resolution,
        mixed_precision=mixed_precision,
        threads=threads,
    )
    io.write_tsv(out_membership, losses.assign(**labels))
    steps = pd.DataFrame(columns=STEP_COLUMNS)
    if validation_dir is not None:
        nearest = validation_nearest(Path(validation_dir), table[table["split"] == "train"])
        seed = int(labels["stage"].removeprefix("seed"))
        steps = nearest.assign(condition=labels["condition"], seed=seed, model=labels["model"])
    io.write_tsv(out_steps, steps[STEP_COLUMNS])
