"""Train/test balance: are the train and test subjects alike in age and sex (within AD, within
CN and overall), so that a held-out accuracy is not read off a confounded split? Tables in, a
report out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

NAN = float("nan")


def _one_per_subject(frame: pd.DataFrame) -> pd.DataFrame:
    # Slices of one subject are not independent samples: count each subject once.
    return frame.drop_duplicates("subject") if "subject" in frame.columns else frame


def _age_check(train: pd.Series, test: pd.Series) -> dict[str, Any]:
    a = pd.to_numeric(train, errors="coerce").dropna().to_numpy(float)
    b = pd.to_numeric(test, errors="coerce").dropna().to_numpy(float)
    if a.size == 0 or b.size == 0:
        return {}
    p = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return {
        "train_summary": f"median {np.median(a):.1f} (n={a.size})",
        "test_summary": f"median {np.median(b):.1f} (n={b.size})",
        "test": "Mann-Whitney U",
        "p_value": p,
    }


def _counts_summary(values: pd.Series) -> str:
    counts = values.value_counts().sort_index()
    return ", ".join(f"{key} {int(n)}" for key, n in counts.items())


def _sex_check(train: pd.Series, test: pd.Series) -> dict[str, Any]:
    a = train.dropna().astype(str).str.strip()
    b = test.dropna().astype(str).str.strip()
    a, b = a[a != ""], b[b != ""]
    if a.empty or b.empty:
        return {}
    out = {"train_summary": _counts_summary(a), "test_summary": _counts_summary(b)}
    categories = sorted(set(a) | set(b))
    if len(categories) < 2:
        return out | {"test": "none (one category)", "p_value": 1.0}
    table = np.array([[np.sum(a == c) for c in categories], [np.sum(b == c) for c in categories]])
    if set(categories) <= {"F", "M"}:
        return out | {"test": "Fisher exact", "p_value": float(sps.fisher_exact(table).pvalue)}
    return out | {"test": "chi-square", "p_value": float(sps.chi2_contingency(table).pvalue)}


def split_balance(train: pd.DataFrame, test: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Whether train and test are balanced in age (Mann-Whitney U, medians reported) and sex
    (Fisher exact on M/F counts, chi-square for other codings), within AD, within CN and
    overall, so an accuracy is not read off a confounded split.

    A subject present on several rows (slices) counts once. A missing column or no values gives
    a check with test "not available" that does not fail. No multiple-testing correction: a
    warning is a prompt to look, not a verdict."""
    checks: list[dict[str, Any]] = []
    warnings: list[str] = []
    train, test = _one_per_subject(train), _one_per_subject(test)
    has_group = "group" in train.columns and "group" in test.columns
    groups = ["AD", "CN", "all"] if has_group else ["all"]
    for variable, check in (("age", _age_check), ("sex", _sex_check)):
        for group in groups:
            row: dict[str, Any] = {"variable": variable, "group": group}
            a, b = train, test
            if group != "all":
                a, b = train[train["group"] == group], test[test["group"] == group]
            found = {}
            if variable in a.columns and variable in b.columns:
                found = check(a[variable], b[variable])
            if not found:
                row |= {
                    "train_summary": "",
                    "test_summary": "",
                    "test": "not available",
                    "p_value": NAN,
                    "balanced": True,
                }
                checks.append(row)
                continue
            row |= found
            row["balanced"] = bool(not row["p_value"] < alpha)
            checks.append(row)
            if not row["balanced"]:
                warnings.append(
                    f"{variable} differs between train and test in group {group} "
                    f"({row['test']} p = {row['p_value']:.3g} < {alpha:g}; train "
                    f"{row['train_summary']}, test {row['test_summary']})"
                )
    return {"checks": checks, "balanced": all(c["balanced"] for c in checks), "warnings": warnings}
