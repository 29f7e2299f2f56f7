"""The centre coronal slice of a brain aligned to the MNI152 1 mm template grid, and its intensity
normalisation. Pure functions: arrays in, arrays out."""

from __future__ import annotations

import numpy as np

from brainmr.preprocess.template import TEMPLATE_SHAPE

# The slice plane: the coronal plane through the centre of the template grid, voxel
# j = 116 of 233, i.e. MNI y = -134 + 116 = -18 mm (through the thalami, the bodies of the
# lateral ventricles and the hippocampi). The crop is centred on the grid centre in x and z:
# voxel i = 98 (x = 0 mm) and k = 94 (z = +22 mm).
CORONAL_J = (TEMPLATE_SHAPE[1] - 1) // 2
CENTRE_I = (TEMPLATE_SHAPE[0] - 1) // 2
CENTRE_K = (TEMPLATE_SHAPE[2] - 1) // 2


def crop_or_pad(image: np.ndarray, size: int, centre: tuple[int, int]) -> np.ndarray:
    """A ``size`` x ``size`` window of a 2-D image centred on ``centre`` (row, col); parts
    outside the image are 0. For an even size the centre is the pixel at size // 2."""
    out = np.zeros((size, size), dtype=image.dtype)
    top, left = centre[0] - size // 2, centre[1] - size // 2
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, image.shape[0]), min(left + size, image.shape[1])
    out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


def center_coronal_slice(aligned: np.ndarray, size: int, j: int = CORONAL_J) -> np.ndarray:
    """The coronal plane j = 116 (MNI y = -18 mm; another plane ``j`` where given, as the demo
    base's pretraining corpus samples) of a volume in the template grid (i, j, k; RAS+), cropped
    or zero-padded to ``size`` x ``size`` around the grid centre (x = 0, z = +22 mm) and
    oriented for viewing: row 0 = superior, column 0 = the subject's right (radiological view,
    1 mm pixels)."""
    if aligned.shape != TEMPLATE_SHAPE:
        raise ValueError(
            f"expected a volume in the template grid {TEMPLATE_SHAPE}, got {aligned.shape}"
        )
    # [i, k] with i = left -> right and k = inferior -> superior; flip both, rows = k
    plane = aligned[::-1, j, ::-1].T
    centre = (TEMPLATE_SHAPE[2] - 1 - CENTRE_K, TEMPLATE_SHAPE[0] - 1 - CENTRE_I)
    return crop_or_pad(plane, size, centre)


def scale_by_brain_percentile(
    image: np.ndarray, brain_voxels: np.ndarray, percentile: float
) -> np.ndarray:
    """Intensity normalisation rule: divide by the ``percentile``-th percentile of the brain's
    voxels (all in-mask voxels of the aligned 3-D brain, not just the slice, so that the scale
    does not depend on what the slice happens to cut) and clip to [0, 1]. float32."""
    brain_voxels = np.asarray(brain_voxels, dtype=np.float64)
    if brain_voxels.size == 0:
        raise ValueError("no brain voxels to normalise by")
    scale = float(np.percentile(brain_voxels, percentile))
    if not scale > 0:
        raise ValueError(f"the {percentile}th percentile of the brain is {scale}; cannot normalise")
    return np.clip(image / scale, 0.0, 1.0).astype(np.float32)
