"""All file I/O of the package in one place. Every write is atomic: a temporary file beside the
target, renamed over it only once complete, so a killed job never leaves a half-written output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from brainmr import GROUPS, SLICE_SIZE


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Map an image in [0, 1] to 8 bits (values outside are clipped)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_png_gray(path: str | os.PathLike, image: np.ndarray) -> None:
    """Save a 2-D image as 8-bit grayscale; floats are taken to be in [0, 1]."""
    array = image if image.dtype == np.uint8 else to_uint8(image)
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="L").save(tmp, format="PNG")


def load_png_gray(path: str | os.PathLike) -> np.ndarray:
    """Load a PNG as a float32 grayscale image in [0, 1]."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def write_tsv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, encoding="utf-8")


# Columns that hold names, never numbers, in every table the workflow writes: read as text, a
# missing value as "" (a subject ID such as 002_S_0295 keeps its zeros, and a missing group does
# not become the text "nan" as astype(str) would make it). The one home of these types.
TEXT_COLUMNS = (
    "subject",
    "image_id",
    "condition",
    "group",
    "split",
    "path",
    "file",
    "sex",
    "source",
    "measure",
    "role",
    "images",
    "prompt",
    "nn_path",
    "predicted",
    "ood_reason",
    "note",
    "interval",
    "fraction_interval",
    "fraction_status",
    "requested_sex",
    "visit",
    "description",
    "model",
    "stage",
    "auc_per_seed",
    "share_copied_per_seed",
    "copies_per_seed",
)


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """A table the workflow wrote, with TEXT_COLUMNS as text."""
    table = pd.read_csv(path, sep="\t", dtype=dict.fromkeys(TEXT_COLUMNS, str))
    text = [c for c in TEXT_COLUMNS if c in table]
    return table.assign(**{c: table[c].fillna("") for c in text}) if text else table


def write_json(path: str | os.PathLike, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(path: str | os.PathLike, fig) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(
            tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight"
        )
    plt.close(fig)


def read_json(path: str | os.PathLike) -> object:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_image(path: str | Path) -> np.ndarray:
    """Read a slice (.npy) or generated image (.png) as a 160 x 160 float32 array in [0, 1]."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if suffix == ".npy":
        image = load_npy(path).astype(np.float32)
    elif suffix == ".png":
        image = load_png_gray(path)
    else:
        raise ValueError(f"{path}: unsupported image type {suffix!r} (expected .npy or .png)")
    if image.shape != (SLICE_SIZE, SLICE_SIZE):
        raise ValueError(
            f"{path}: image shape {image.shape}, expected ({SLICE_SIZE}, {SLICE_SIZE})"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{path}: image contains NaN or infinite values")
    if image.min() < -1e-6 or image.max() > 1 + 1e-6:
        raise ValueError(
            f"{path}: intensities span [{image.min():.3g}, {image.max():.3g}], expected [0, 1]"
        )
    return image


def require_columns(table, columns: Iterable[str], what: str) -> None:
    """Raise a clear error when a table lacks columns the stage needs."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(table.columns)}")


def require_groups(groups: Iterable[str], what: str) -> None:
    bad = sorted({str(g) for g in groups} - set(GROUPS))
    if bad:
        raise ValueError(f"{what}: unknown group(s) {bad}; expected AD or CN")


def as_bool(values: pd.Series, what: str) -> pd.Series:
    """A True/False column, also when read back from text (where astype(bool) of "False" is
    True)."""
    if values.dtype == bool:
        return values
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = values.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - set(mapping))
    if bad:
        raise ValueError(f"{what}: expected True/False, got {bad}")
    return text.map(mapping).astype(bool)
