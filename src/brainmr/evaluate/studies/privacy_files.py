"""The privacy study's file-level steps (brainmr.evaluate.studies.privacy computes): per model,
the slices' denoising losses and the validation images' nearest training slices; per run, the
attack, copies and step tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import SLICE_SIZE, io
from brainmr.cohort import instance_set, read_slices
from brainmr.conditions import REAL_CONDITION
from brainmr.diffusion.common import resize_image
from brainmr.diffusion.config import MembershipConfig
from brainmr.diffusion.membership import measure_membership
from brainmr.evaluate.images import flatten, load_normalised, rescale_foreground
from brainmr.evaluate.judges.metrics import brain_mask, masked_nearest_neighbours
from brainmr.evaluate.judges.outliers import is_generated
from brainmr.evaluate.studies.privacy import (
    attack_summary,
    attack_table,
    copies_per_subject,
    copies_summary,
    most_copied,
    step_curve,
    threshold_interval,
)
from brainmr.instructions import InstructionConfig
from brainmr.io import as_bool

log = logging.getLogger(__name__)

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


def summarise_privacy(
    *,
    membership: list[Path],
    steps: list[Path],
    scores: list[Path],
    seeds: list[int],
    references: Path,
    slices: Path,
    quantile: float,
    n_bootstrap: int,
    seed: int,
    top: int,
    out_attacks: Path,
    out_summary: Path,
    out_subjects: Path,
    out_steps: Path,
    out_threshold: Path,
) -> None:
    """The attack per model and across seeds, the copies per training subject (every generated
    set of a seed, ``scores`` in ``seeds`` order), the step curve, and the threshold used."""
    losses = pd.concat([io.read_tsv(p) for p in membership], ignore_index=True)
    attacks = attack_table(
        losses.assign(member=as_bool(losses["member"], "member")), n_bootstrap, seed
    )
    refs = io.read_tsv(references)
    reals = refs[refs["condition"] == REAL_CONDITION]
    threshold = threshold_interval(reals["nn_corr"].to_numpy(float), quantile, n_bootstrap, seed)
    train = read_slices(slices, "train")
    per_seed, by_condition = [], []
    for replicate, path in zip(seeds, scores, strict=True):
        table = io.read_tsv(path)
        generated = table[is_generated(table["condition"])]
        per_seed.append(
            copies_per_subject(generated, train, threshold["threshold"]).assign(seed=replicate)
        )
        for condition, images in generated.groupby("condition", sort=False):
            counts = copies_per_subject(images, train, threshold["threshold"])
            by_condition.append(counts.assign(seed=replicate, condition=condition))
    summary = attack_summary(attacks)
    copies = pd.concat(by_condition, ignore_index=True)
    summary = summary.assign(
        **pd.DataFrame(
            [copies_summary(copies[copies["condition"] == c]) for c in summary["condition"]]
        )
    )
    everything = pd.concat(per_seed, ignore_index=True)
    io.write_tsv(out_attacks, attacks)
    io.write_tsv(out_summary, summary)
    io.write_tsv(out_subjects, most_copied(everything, top))
    io.write_tsv(
        out_steps, step_curve(pd.concat([io.read_tsv(p) for p in steps]), threshold["threshold"])
    )
    io.write_json(out_threshold, threshold | copies_summary(everything) | {"quantile": quantile})
    log.info("privacy: %d models attacked, threshold %.3f", len(attacks), threshold["threshold"])
