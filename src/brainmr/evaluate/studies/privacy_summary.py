"""The privacy study's summary per run, from the measuring jobs' tables
(brainmr.evaluate.studies.privacy_measure) and the run's flagged scores: the attack, copies and
step tables (brainmr.evaluate.studies.privacy computes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from brainmr import io
from brainmr.cohort import read_slices
from brainmr.conditions import REAL_CONDITION
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

log = logging.getLogger(__name__)


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
    attacks = attack_table(losses, n_bootstrap, seed)  # it reads ``member`` with as_bool
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
