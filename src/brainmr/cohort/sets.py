"""Which slices form which set: train/test tables and DreamBooth instance sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from brainmr import GROUPS
from brainmr.instructions import InstructionConfig, render
from brainmr.io import require_columns, write_tsv

# The slice table (results/cohort/slices.tsv): one row per preprocessed subject, every rule that
# needs slices reads it (read_slices) instead of rebuilding it from the scans sheet.
SLICE_TYPES = {"subject": str, "group": str, "split": str, "path": str, "age": float, "sex": str}


def slice_table(scans: pd.DataFrame, slice_paths: list[str]) -> pd.DataFrame:
    """Rows of the scans sheet whose slice is given, with ``path`` to it (file stem = subject)."""
    by_subject = {Path(p).name.split(".")[0]: str(p) for p in slice_paths}
    unknown = sorted(set(by_subject) - set(scans.subject))
    if unknown:
        raise ValueError(f"slices of subject(s) not in the scans sheet: {unknown}")
    rows = scans[scans.subject.isin(by_subject)]
    return rows.assign(path=rows.subject.map(by_subject)).reset_index(drop=True)


def instance_set(
    slices: pd.DataFrame,
    prompts: dict[str, str],
    instructions: InstructionConfig | None = None,
    split: str = "train",
) -> pd.DataFrame:
    """Train slices (or another split's) of the classes in ``prompts`` (class -> prompt; a model
    of one class gets one), each with its class's prompt (prompts are kept whole: commas too). A
    template prompt is written per slice from its subject's fields (brainmr.instructions)."""
    unknown = sorted(set(prompts) - set(GROUPS))
    if unknown:
        raise ValueError(f"prompts for unknown class(es) {unknown} (classes: {list(GROUPS)})")
    train = slices[(slices.split == split) & slices.group.isin(list(prompts))]
    empty = [g for g in prompts if not (train.group == g).any()]
    if empty:
        raise ValueError(f"no {split} slices of class(es) {empty}")
    out = train[["subject", "group", "path"]].copy()
    rows = train.to_dict("records")
    out["prompt"] = [render(prompts[row["group"]], row, instructions) for row in rows]
    return out.reset_index(drop=True)


def generated_table(images_dir: str | Path) -> pd.DataFrame:
    """A generated set's manifest with full image paths (path, file, condition, group...)."""
    images_dir = Path(images_dir)
    manifest = pd.read_csv(images_dir / "manifest.tsv", sep="\t", dtype={"prompt": str})
    return manifest.assign(path=[str(images_dir / f) for f in manifest.file])


def generated_sets(images_dirs: list[str | Path], seeds: list[int]) -> pd.DataFrame:
    """Every image of several generated sets, each with its set's replicate ``seed`` (given by the
    workflow, one per folder, never read back from a path)."""
    if len(seeds) != len(images_dirs):
        raise ValueError(f"{len(images_dirs)} generated image folders but {len(seeds)} seeds")
    frames = [
        generated_table(d).assign(seed=int(s)) for d, s in zip(images_dirs, seeds, strict=True)
    ]
    if not frames:
        raise ValueError("no generated image folders given")
    return pd.concat(frames, ignore_index=True)


def write_slice_table(out_tsv: str | Path, *, scans: pd.DataFrame, slice_paths: list[str]) -> None:
    """The slice table of every subject of the scans sheet (each must have its slice)."""
    table = slice_table(scans, slice_paths)
    missing = sorted(set(scans.subject) - set(table.subject))
    if missing:
        raise ValueError(f"scans sheet subject(s) without a slice: {missing}")
    write_tsv(out_tsv, table[list(SLICE_TYPES)])


def read_slices(path: str | Path, split: str | None = None) -> pd.DataFrame:
    """The slice table with its column types, optionally one split's rows ("train", "test")."""
    table = pd.read_csv(path, sep="\t", dtype=SLICE_TYPES)
    require_columns(table, list(SLICE_TYPES), f"slice table {path}")
    if split is not None:
        table = table[table["split"] == split].reset_index(drop=True)
    return table
