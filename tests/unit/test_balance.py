"""brainmr.evaluate.stats.balance: the train/test split's age and sex balance checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainmr.evaluate.stats.balance import split_balance


def split_frame(ages: list[float], prefix: str, sex: bool = True) -> pd.DataFrame:
    n = len(ages)
    frame = pd.DataFrame(
        {
            "subject": [f"{prefix}{i}" for i in range(n)],
            "group": ["AD" if i % 2 else "CN" for i in range(n)],
            "age": ages,
        }
    )
    if sex:
        frame["sex"] = ["M" if (i // 2) % 2 else "F" for i in range(n)]
    return frame


def test_split_balance_flags_shifted_ages() -> None:
    rng = np.random.default_rng(0)
    train = split_frame(list(rng.normal(60, 3, 40)), "tr")
    test = split_frame(list(rng.normal(80, 3, 20)), "te")
    out = split_balance(train, test)
    assert out["balanced"] is False
    age = {c["group"]: c for c in out["checks"] if c["variable"] == "age"}
    assert set(age) == {"AD", "CN", "all"}
    assert all(not c["balanced"] and c["p_value"] < 0.001 for c in age.values())
    assert age["all"]["test"] == "Mann-Whitney U"
    assert "median 60" in age["all"]["train_summary"] or "median 59" in age["all"]["train_summary"]
    assert any("age" in w and "AD" in w and "p =" in w for w in out["warnings"])
    sex = [c for c in out["checks"] if c["variable"] == "sex"]
    assert all(c["balanced"] and c["test"] == "Fisher exact" for c in sex)


def test_split_balance_balanced_case_and_subject_dedup() -> None:
    ages = [60 + (i % 20) for i in range(40)]
    train, test = split_frame(ages, "tr"), split_frame(ages[::2], "te")
    slices = pd.concat([test] * 5, ignore_index=True)  # 5 slices per subject
    out = split_balance(train, slices)
    assert out["balanced"] is True and out["warnings"] == []
    overall = next(c for c in out["checks"] if c["variable"] == "age" and c["group"] == "all")
    assert "n=20" in overall["test_summary"]  # subjects, not slices
    assert len(out["checks"]) == 6


def test_split_balance_missing_sex_is_not_available() -> None:
    train, test = split_frame([70.0] * 10, "tr", sex=False), split_frame([70.0] * 6, "te")
    out = split_balance(train, test)
    sex = [c for c in out["checks"] if c["variable"] == "sex"]
    assert len(sex) == 3 and all(c["test"] == "not available" for c in sex)
    assert all(c["balanced"] and math.isnan(c["p_value"]) for c in sex)
    test_no_age = test.assign(age=np.nan)
    age = [c for c in split_balance(train, test_no_age)["checks"] if c["variable"] == "age"]
    assert all(c["test"] == "not available" for c in age)


def test_split_balance_other_sex_coding_uses_chi_square() -> None:
    train = split_frame([70.0] * 30, "tr").assign(sex=["M", "F", "X"] * 10)
    test = split_frame([70.0] * 30, "te").assign(sex=["M"] * 28 + ["F", "X"])
    out = split_balance(train, test)
    overall = next(c for c in out["checks"] if c["variable"] == "sex" and c["group"] == "all")
    table = np.array([[10, 10, 10], [1, 28, 1]])  # columns F, M, X
    assert overall["test"] == "chi-square"
    assert overall["p_value"] == pytest.approx(stats.chi2_contingency(table).pvalue)
    assert not overall["balanced"] and any("sex" in w for w in out["warnings"])
