"""Reading a T1 volume in any orientation (NIfTI via nibabel, a DICOM series folder or any other
format SimpleITK reads) into one form: a float32 3-D array with its voxel -> RAS+ mm affine, the
NIfTI convention. ``to_sitk`` gives the SimpleITK (LPS) view of the same volume."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

log = logging.getLogger(__name__)
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
MIN_VOXELS_PER_AXIS = 8  # anything thinner is not a 3-D head scan


class InputImageError(ValueError):
    """A scan that cannot be used: the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Volume:
    data: np.ndarray  # float32, 3-D
    affine: np.ndarray  # voxel (i, j, k) -> RAS+ mm
    source: str  # where it came from, for messages


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j, k) array and RAS+ affine of a SimpleITK image (whose physical space is LPS)."""
    data = sitk.GetArrayFromImage(image)  # (k, j, i) for 3-D
    data = data.transpose(tuple(reversed(range(data.ndim))))
    dim = image.GetDimension()
    direction = np.array(image.GetDirection()).reshape(dim, dim)[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ direction @ np.diag(image.GetSpacing()[:3])
    affine[:3, 3] = LPS_FROM_RAS @ np.array(image.GetOrigin()[:3])
    return data, affine


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputImageError(f"{folder}: no DICOM series found in this folder")
    # several series in one folder: take the one with the most slices
    files = max((reader.GetGDCMSeriesFileNames(str(folder), s) for s in series), key=len)
    if len(series) > 1:
        log.warning("%s holds %d DICOM series; using the largest", folder, len(series))
    reader.SetFileNames(files)
    return from_sitk(reader.Execute())


def validate_volume(data: np.ndarray, affine: np.ndarray, source: str) -> Volume:
    """Check a raw array and affine and return them as a Volume; InputImageError if unusable."""
    if data.ndim == 4 and data.shape[3] == 1:  # a 3-D scan stored as a one-volume 4-D image
        data = data[..., 0]
    if data.ndim != 3:
        raise InputImageError(
            f"{source}: image is {data.ndim}-D with shape {data.shape}; "
            "expected a 3-D volume (or 4-D with a single volume)"
        )
    if min(data.shape) < MIN_VOXELS_PER_AXIS:
        raise InputImageError(f"{source}: shape {data.shape} is too thin for a 3-D head scan")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise InputImageError(f"{source}: unsupported voxel type {data.dtype}")
    data = np.asarray(data, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputImageError(f"{source}: {bad} voxels are NaN or infinite")
    if not data.any():
        raise InputImageError(f"{source}: image is empty (every voxel is 0)")
    if float(data.max()) == float(data.min()):
        raise InputImageError(f"{source}: image is constant ({float(data.max())})")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputImageError(f"{source}: the voxel-to-world affine is singular or not finite")
    return Volume(data=data, affine=np.asarray(affine, dtype=np.float64), source=source)


def load_volume(path: str | Path) -> Volume:
    """Load a scan: a .nii/.nii.gz file (nibabel), a DICOM series folder or another file
    SimpleITK reads. Raises InputImageError naming the file when it is not a usable 3-D image."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputImageError(f"{source}: no such file or folder")
    try:
        if path.is_dir():
            data, affine = _read_dicom_series(path)
        elif path.name.endswith((".nii", ".nii.gz")):
            image = nib.load(path)
            data, affine = np.asanyarray(image.dataobj), image.affine
        else:
            data, affine = from_sitk(sitk.ReadImage(source))
    except InputImageError:
        raise
    except Exception as err:  # unreadable: say which file
        raise InputImageError(f"{source}: cannot be read as an image ({err})") from err
    return validate_volume(data, affine, source)


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image (LPS physical space) of an (i, j, k) array with a RAS+ affine. A shear
    in the affine (non-orthogonal axes) is dropped: the nearest rotation is kept."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = affine[:3, :3] / spacing
    u, _, vt = np.linalg.svd(direction)
    rotation = u @ vt  # nearest orthonormal matrix (itself when there is no shear)
    if not np.allclose(rotation, direction, atol=1e-4):
        log.warning("affine has a shear; using the nearest rotation")
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (LPS_FROM_RAS @ rotation).ravel()])
    image.SetOrigin([float(v) for v in LPS_FROM_RAS @ affine[:3, 3]])
    return image
