"""Rigid (rotation + translation) alignment of a skull-stripped brain to the skull-stripped MNI152
2009 template with SimpleITK, and resampling into the template's 1 mm grid (197 x 233 x 189).

Transforms follow ITK's convention: they map a point of the template (fixed image, LPS mm) to the
corresponding point of the subject's scan (moving image, LPS mm)."""

from __future__ import annotations

import functools
import logging

import numpy as np
import SimpleITK as sitk

from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.template import load_template
from brainmr.preprocess.volume import from_sitk, to_sitk

log = logging.getLogger(__name__)
SAMPLING_PERCENTAGE = 0.25  # of the template brain's voxels, drawn at random with a fixed seed
SAMPLING_SEED = 1  # any but 0: SimpleITK reads a seed of 0 as "seed from the wall clock"


def resample_isotropic(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """The image on an isotropic grid of ``spacing_mm`` covering the same extent, smoothed first
    when it is downsampled (to avoid aliasing)."""
    old_spacing = np.array(image.GetSpacing())
    size = np.ceil(np.array(image.GetSize()) * old_spacing / spacing_mm).astype(int)
    sigma = np.sqrt(np.maximum(spacing_mm**2 - old_spacing**2, 0)) / 2.355  # FWHM -> sigma
    if np.any(sigma > 0):
        image = sitk.SmoothingRecursiveGaussian(image, [float(s) for s in np.maximum(sigma, 1e-3)])
    return sitk.Resample(
        image,
        [int(s) for s in size],
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [float(spacing_mm)] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


@functools.lru_cache(maxsize=1)
def template_grid() -> sitk.Image:
    """The template T1 (skull-stripped) at 1 mm, as a SimpleITK image: the resampling grid."""
    tpl = load_template()
    return to_sitk(np.where(tpl.mask, tpl.t1, 0).astype(np.float32), tpl.affine)


@functools.lru_cache(maxsize=4)
def _fixed_images(spacing_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """The template and the mask where the metric is sampled (the brain plus a margin of about
    one working voxel, so that the brain's edge counts) at ``spacing_mm``."""
    tpl = load_template()
    fixed = resample_isotropic(template_grid(), spacing_mm)
    brain = to_sitk(tpl.mask.astype(np.float32), tpl.affine)
    near_brain = sitk.Resample(brain, fixed, sitk.Transform(), sitk.sitkLinear, 0.0) > 0
    return fixed, sitk.BinaryDilate(sitk.Cast(near_brain, sitk.sitkUInt8), [1, 1, 1])


def crop_to_mask(data: np.ndarray, affine: np.ndarray, mask: np.ndarray, margin: int = 4):
    """The brain (data outside ``mask`` set to 0) cropped to the mask's bounding box plus a
    margin, with the affine of the crop."""
    index = np.argwhere(mask)
    lo = np.maximum(index.min(0) - margin, 0)
    hi = np.minimum(index.max(0) + margin + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    cropped_affine = affine.copy()
    cropped_affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return np.where(mask[box], data[box], 0).astype(np.float32), mask[box], cropped_affine


def register_rigid(
    brain: np.ndarray, affine: np.ndarray, cfg: PreprocessConfig
) -> sitk.Euler3DTransform:
    """Rigid transform (template LPS mm -> scan LPS mm) aligning a skull-stripped brain to the
    template: centres of mass first (moments), then Mattes mutual information optimised by
    regular-step gradient descent, multi-resolution (cfg.shrink_factors, with
    cfg.smoothing_sigmas in voxels), both images at cfg.registration_mm isotropic."""
    fixed, fixed_mask = _fixed_images(float(cfg.registration_mm))
    moving = resample_isotropic(to_sitk(brain.astype(np.float32), affine), cfg.registration_mm)
    transform = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    transform = sitk.Euler3DTransform(transform)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING_PERCENTAGE, SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=int(cfg.registration_iterations),
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(s) for s in cfg.shrink_factors])
    method.SetSmoothingSigmasPerLevel([float(s) for s in cfg.smoothing_sigmas])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    log.info(
        "rigid registration: %s after %d iterations, metric %.4f",
        method.GetOptimizerStopConditionDescription(),
        method.GetOptimizerIteration(),
        method.GetMetricValue(),
    )
    return transform


def resample_to_template(
    brain: np.ndarray, mask: np.ndarray, affine: np.ndarray, transform: sitk.Transform
) -> tuple[np.ndarray, np.ndarray]:
    """Brain (linear) and mask (nearest) resampled into the 1 mm template grid, as (i, j, k)
    arrays in the template's voxel order (RAS+: i to the right, j to anterior, k to superior)."""
    grid = template_grid()
    aligned = sitk.Resample(
        to_sitk(brain.astype(np.float32), affine),
        grid,
        transform,
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    aligned_mask = sitk.Resample(
        to_sitk(mask.astype(np.uint8), affine), grid, transform, sitk.sitkNearestNeighbor, 0
    )
    return from_sitk(aligned)[0], from_sitk(aligned_mask)[0] > 0
