"""brainmr.splits: the one stratified subject split (the cohort's test subjects and the CNN's
validation subjects), balanced per group at the demo's and the paper's sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainmr.cohort.loni import assign_split
from brainmr.evaluate.judges.classifier import split_subjects
from brainmr.splits import split_size, stratified_subjects


def cohort(n_ad: int, n_cn: int) -> pd.DataFrame:
    groups = ["AD"] * n_ad + ["CN"] * n_cn
    return pd.DataFrame(
        {"subject": [f"{i:03d}_S_{i:04d}" for i in range(len(groups))], "group": groups}
    )


@pytest.mark.parametrize(
    "n_ad,n_cn,fraction,expected", [(12, 16, 0.3, (4, 5)), (300, 400, 0.2, (60, 80))]
)
def test_each_group_keeps_its_share(n_ad, n_cn, fraction, expected):
    table = cohort(n_ad, n_cn)
    drawn = stratified_subjects(table, fraction, seed=0)
    by_group = table[table["subject"].isin(drawn)]["group"].value_counts()
    assert (by_group["AD"], by_group["CN"]) == expected
    assert stratified_subjects(table, fraction, seed=0) == drawn  # seeded
    assert stratified_subjects(table, fraction, seed=1) != drawn


def test_split_size_keeps_one_on_each_side():
    assert split_size(0.2, 1) == 0 and split_size(0.01, 10) == 1 and split_size(0.99, 10) == 9
    assert split_size(0.3, 12) == 4 and split_size(0.2, 8) == 2


def test_test_and_validation_splits_are_the_same_function():
    table = cohort(8, 11)
    test = assign_split(table, 0.25, seed=3)
    assert set(test.loc[test["split"] == "test", "subject"]) == stratified_subjects(table, 0.25, 3)
    val = split_subjects(table, 0.25, seed=3)
    assert set(table.loc[val, "subject"]) == stratified_subjects(table, 0.25, 3)
    assert isinstance(val, np.ndarray) and val.dtype == bool
