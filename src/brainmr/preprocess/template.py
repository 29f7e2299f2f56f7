"""The MNI152 2009 (ICBM 2009a symmetric) 1 mm template shipped inside nilearn: the registration
target of preprocessing and the anatomical source of the synthetic demo heads.

The files are read straight from nilearn's package data with nibabel. This is exactly what
``nilearn.datasets.load_mni152_template(resolution=1)`` (and the GM/WM template loaders) return,
each image divided by its maximum, and ``load_mni152_brain_mask`` (template > 0.2), without
importing ``nilearn.datasets`` (which pulls in scikit-learn: ~1 s per job, x 700 subjects).
A unit test checks the equality against nilearn's loaders."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

# Grid of the 1 mm template: 197 x 233 x 189 voxels, RAS+, origin (-98, -134, -72) mm.
TEMPLATE_SHAPE = (197, 233, 189)
BRAIN_MASK_THRESHOLD = 0.2  # nilearn's load_mni152_brain_mask default
_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass(frozen=True)
class Template:
    """The template T1 (voxel order of ``affine``, RAS+) in [0, 1] and its brain mask (bool)."""

    t1: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


def _nilearn_data_dir() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nilearn is required for the MNI152 template")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _load_scaled(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = _nilearn_data_dir() / _FILES[name]
    if not path.is_file():  # a nilearn layout we do not know: use its public loaders
        from nilearn import datasets

        loader = {
            "t1": datasets.load_mni152_template,
            "gm": datasets.load_mni152_gm_template,
            "wm": datasets.load_mni152_wm_template,
        }[name]
        img = loader(resolution=1)
        return img.get_fdata(dtype=np.float32), img.affine
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32)
    data /= data.max()
    return data, img.affine


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load (once per process) the MNI152 2009 1 mm skull-stripped T1 and its brain mask."""
    t1, affine = _load_scaled("t1")
    mask = t1 > BRAIN_MASK_THRESHOLD
    for array in (t1, mask, affine):
        array.setflags(write=False)  # shared by every caller in the process
    return Template(t1=t1, mask=mask, affine=affine)


@functools.lru_cache(maxsize=2)
def load_tissue_map(tissue: str) -> np.ndarray:
    """The template's grey ("gm") or white ("wm") matter probability map, in [0, 1]."""
    if tissue not in ("gm", "wm"):
        raise ValueError(f"unknown tissue {tissue!r}: expected gm or wm")
    data, _ = _load_scaled(tissue)
    data.setflags(write=False)
    return data
