"""The one stratified subject split of the project: the cohort's held-out test subjects
(brainmr.cohort.loni) and the CNN's validation subjects (brainmr.evaluate.judges.classifier) are
both
drawn by ``stratified_subjects``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_size(fraction: float, n_subjects: int) -> int:
    """round(fraction x n), but at least one and leaving at least one; 0 for a lone subject."""
    if n_subjects < 2:
        return 0
    return min(max(int(round(fraction * n_subjects)), 1), n_subjects - 1)


def stratified_subjects(table: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """The subjects drawn from each group of ``table`` (columns subject, group): per group in
    sorted order, its sorted subjects shuffled by one seeded generator and the first
    ``split_size`` taken, so that every group keeps its share."""
    rng = np.random.default_rng(seed)
    drawn: set[str] = set()
    for _, rows in table.groupby("group", sort=True):
        subjects = np.array(sorted(rows["subject"].astype(str).unique()))
        rng.shuffle(subjects)
        drawn.update(subjects[: split_size(fraction, len(subjects))])
    return drawn
