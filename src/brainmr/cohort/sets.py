"""Which slices form which set: train/test tables and DreamBooth instance sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def slice_table(scans: pd.DataFrame, slice_paths: list[str]) -> pd.DataFrame:
    """Rows of the scans sheet whose slice is given, with ``path`` to it (file stem = subject)."""
    by_subject = {Path(p).name.split(".")[0]: str(p) for p in slice_paths}
    unknown = sorted(set(by_subject) - set(scans.subject))
    if unknown:
        raise ValueError(f"slices of subject(s) not in the scans sheet: {unknown}")
    rows = scans[scans.subject.isin(by_subject)]
    return rows.assign(path=rows.subject.map(by_subject)).reset_index(drop=True)


def instance_set(slices: pd.DataFrame, prompts: dict[str, str]) -> pd.DataFrame:
    """Train slices of every class with that class's prompt (prompts are kept whole: commas too)."""
    train = slices[(slices.split == "train") & slices.group.isin(["AD", "CN"])]
    missing = sorted(set(train.group) - set(prompts))
    if missing:
        raise ValueError(f"no prompt for class(es) {missing}")
    out = train[["subject", "group", "path"]].copy()
    out["prompt"] = out.group.map(prompts)
    return out.reset_index(drop=True)


def generated_table(images_dir: str | Path) -> pd.DataFrame:
    """A generated set's manifest with full image paths (path, file, condition, group...)."""
    images_dir = Path(images_dir)
    manifest = pd.read_csv(images_dir / "manifest.tsv", sep="\t", dtype={"prompt": str})
    return manifest.assign(path=[str(images_dir / f) for f in manifest.file])
