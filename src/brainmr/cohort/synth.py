"""Synthetic ADNI-like T1 heads for the embedded demo: a subject's anatomy (brainmr.cohort.anatomy,
from the MNI152 2009 template) sampled into a scan. Each subject gets, deterministically from its
seed, besides its anatomy:

- a smooth random deformation, a random rigid pose (rotations up to 10 degrees about each axis,
  shifts up to 10 mm), a smooth multiplicative bias field and Rician noise,
- resampling (one trilinear ``map_coordinates`` pass) onto an isotropic ``voxel_mm`` grid in an
  ADNI-like sagittal orientation (PIR by default), so that readers must honour the affine.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from brainmr.cohort.anatomy import (
    GROUP_ATROPHY,
    HEAD_CENTRE_MM,
    check_age,
    sex_scaling,
    subject_canvas,
    template_anatomy,
    world_grid,
)
from brainmr.io import atomic_path

FOV_MM = np.array([204.0, 240.0, 240.0])  # field of view along R-L, A-P, S-I (ADNI-like)
DEFORMATION_MM = 1.5  # root-mean-square displacement of the subject deformation, per axis
BIAS_LOG_SD = 0.1  # root-mean-square of the log bias field


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], order: int) -> np.ndarray:
    """A smooth random field of about unit root-mean-square: a sum of separable cosines up to
    ``order`` half-periods per axis (no constant term), lower frequencies weighted more."""
    basis = [
        np.cos(np.pi * np.outer(np.arange(n) / max(n - 1, 1), np.arange(order + 1))).astype(
            np.float32
        )
        for n in shape
    ]
    a, b, c = np.meshgrid(*[np.arange(order + 1)] * 3, indexing="ij")
    coeff = rng.standard_normal((order + 1,) * 3).astype(np.float32) / np.maximum(a + b + c, 1)
    coeff[0, 0, 0] = 0
    # each cosine product has mean square 1/2 per non-constant factor
    power = np.sum(coeff**2 * 0.5 ** ((a > 0).astype(int) + (b > 0) + (c > 0)))
    coeff /= np.sqrt(power)
    # contract one axis at a time: cheap even on a full-resolution grid
    field = np.einsum("abc,kc->abk", coeff, basis[2])
    field = np.einsum("abk,jb->ajk", field, basis[1])
    return np.einsum("ajk,ia->ijk", field, basis[0], optimize=True)


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def scanner_grid(voxel_mm: float, orientation: str = "PIR") -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of the scanner grid: FOV_MM centred on the isocentre, axes as the
    nibabel axis codes ``orientation`` say (PIR: i to posterior, j to inferior, k to right)."""
    ornt = nib.orientations.axcodes2ornt(tuple(orientation))
    rotation = np.zeros((3, 3))
    shape = []
    for axis, (world_axis, flip) in enumerate(ornt):
        rotation[int(world_axis), axis] = flip * voxel_mm
        shape.append(int(round(FOV_MM[int(world_axis)] / voxel_mm)))
    affine = np.eye(4)
    affine[:3, :3] = rotation
    affine[:3, 3] = -rotation @ (np.array(shape) - 1) / 2
    return tuple(shape), affine


def _synthesize(
    *,
    group: str,
    atrophy: float,
    voxel_mm: float,
    seed: int,
    orientation: str,
    with_mask: bool,
    age: float | None = None,
    sex: str | None = None,
) -> tuple[nib.Nifti1Image, nib.Nifti1Image | None]:
    if group not in GROUP_ATROPHY:
        raise ValueError(f"unknown group {group!r}: expected one of {sorted(GROUP_ATROPHY)}")
    if atrophy < 0 or voxel_mm <= 0:
        raise ValueError(f"atrophy must be >= 0 and voxel_mm > 0 (got {atrophy}, {voxel_mm})")
    age = check_age(age)  # before the costly anatomy: a bad age or sex fails fast
    head_to_mni = sex_scaling(sex)
    anatomy = template_anatomy()
    rng = np.random.default_rng(seed)
    # Draw every random number in the same order whatever the group: same seed, same subject.
    angles = np.deg2rad(rng.uniform(-10, 10, 3))
    shift = rng.uniform(-10, 10, 3)
    gain = rng.uniform(600, 1000)
    noise_sd = rng.uniform(0.015, 0.03)
    canvas, mask = subject_canvas(anatomy, rng, atrophy * GROUP_ATROPHY[group], age)

    shape, out_affine = scanner_grid(voxel_mm, orientation)
    # scanner mm = R (mni - centre) + shift; so mni = R^T (scanner - shift) + centre
    rot = _rotation(angles)
    scanner_to_mni = np.eye(4)
    scanner_to_mni[:3, :3] = rot.T
    scanner_to_mni[:3, 3] = HEAD_CENTRE_MM - rot.T @ shift
    if sex is not None:  # the head scaled about its centre (skipped for None: same bytes)
        scanner_to_mni = head_to_mni @ scanner_to_mni
    to_canvas = np.linalg.inv(anatomy.affine) @ scanner_to_mni @ out_affine
    coords = np.stack(world_grid(shape, to_canvas))
    for axis in range(3):  # subject-level smooth deformation (canvas voxels are 1 mm)
        coords[axis] += DEFORMATION_MM * _smooth_field(rng, shape, order=2)

    head = ndi.map_coordinates(canvas, coords, order=1, cval=0.0, output=np.float32)
    bias = np.exp(BIAS_LOG_SD * _smooth_field(rng, shape, order=2))
    head *= bias
    noise = rng.standard_normal((2, *shape), dtype=np.float32) * noise_sd
    head = np.sqrt((head + noise[0]) ** 2 + noise[1] ** 2)  # Rician magnitude
    data = np.clip(np.round(head * gain), 0, np.iinfo(np.int16).max).astype(np.int16)

    image = nib.Nifti1Image(data, out_affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(out_affine, code=1)
    image.set_sform(out_affine, code=1)
    if not with_mask:
        return image, None
    brain = ndi.map_coordinates(mask.astype(np.float32), coords, order=1, output=np.float32)
    mask_image = nib.Nifti1Image((brain > 0.5).astype(np.uint8), out_affine)
    mask_image.set_qform(out_affine, code=1)
    mask_image.set_sform(out_affine, code=1)
    return image, mask_image


def synthesize_head(
    *,
    group: str,
    atrophy: float,
    voxel_mm: float,
    seed: int,
    orientation: str = "PIR",
    age: float | None = None,
    sex: str | None = None,
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """One synthetic T1 head (int16) and its true brain mask (uint8) in the same voxel space.

    ``group`` is AD, CN or MCI (half the AD atrophy); ``atrophy`` scales the AD changes (0: none);
    the same ``seed`` gives the same subject (pose, deformation, bias, noise) in every group, at
    every ``age`` (years, 18-110) and ``sex`` (F or M); None for either leaves it out."""
    head, mask = _synthesize(
        group=group,
        atrophy=atrophy,
        voxel_mm=voxel_mm,
        seed=seed,
        orientation=orientation,
        with_mask=True,
        age=age,
        sex=sex,
    )
    assert mask is not None
    return head, mask


def save_nifti(path: str | Path, image: nib.Nifti1Image) -> None:
    """Write a NIfTI atomically; a ``.nii.gz`` path is gzip-compressed (level 1 as nibabel's
    default, mtime 0 so the same image gives the same bytes)."""
    path = Path(path)
    if not path.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: expected a .nii or .nii.gz path")
    payload = image.to_bytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write_demo_scan(
    path: Path,
    *,
    group: str,
    atrophy: float,
    voxel_mm: float,
    seed: int,
    age: float | None = None,
    sex: str | None = None,
) -> None:
    """Write one synthetic T1 head (see the module docstring) as a NIfTI file at ``path``."""
    head, _ = _synthesize(
        group=group,
        atrophy=atrophy,
        voxel_mm=voxel_mm,
        seed=seed,
        orientation="PIR",
        with_mask=False,
        age=age,
        sex=sex,
    )
    save_nifti(path, head)
