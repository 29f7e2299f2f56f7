"""One subject's preprocessing, the I/O wrapper around the pure steps: load -> skull strip ->
rigid registration to MNI152 -> resampling to the 1 mm template grid -> centre coronal slice ->
intensity normalisation -> slice (.npy, .png), transform (.tfm) and QC figure (.png)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from brainmr import SLICE_SIZE, io
from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.qc import qc_figure
from brainmr.preprocess.register import crop_to_mask, register_rigid, resample_to_template
from brainmr.preprocess.skullstrip import skull_strip
from brainmr.preprocess.slicing import center_coronal_slice, scale_by_brain_percentile
from brainmr.preprocess.volume import load_volume
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)


def set_threads(threads: int, cfg: PreprocessConfig) -> int:
    """Cap this job at ``threads`` CPU threads in every library preprocessing uses: SimpleITK,
    OpenMP/BLAS and, for deepbet, torch (see brainmr.threads.limit_threads)."""
    return limit_threads(threads, simpleitk=True, torch=cfg.skull_strip == "deepbet")


def preprocess_scan(
    scan: Path,
    *,
    subject: str,
    cfg: PreprocessConfig,
    slice_npy: Path,
    slice_png: Path,
    qc_png: Path,
    transform: Path,
    threads: int | None = 1,
) -> dict[str, float]:
    """Preprocess one scan (.nii/.nii.gz file or DICOM series folder) into its centre coronal
    slice, on ``threads`` CPU threads (None: every library's own default, i.e. all cores; for
    benchmarks). Returns the seconds spent per stage: load, strip, register, slice (resampling,
    slicing and writing the outputs). The scan itself is only read."""
    if threads is not None:
        set_threads(threads, cfg)
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal start
        now = time.perf_counter()
        seconds[stage] = now - start
        start = now

    volume = load_volume(scan)
    lap("load")
    mask = skull_strip(volume, cfg)
    lap("strip")
    brain, brain_mask, affine = crop_to_mask(volume.data, volume.affine, mask)
    rigid = register_rigid(brain, affine, cfg)
    lap("register")
    aligned, aligned_mask = resample_to_template(brain, brain_mask, affine, rigid)
    if not aligned_mask.any():
        raise RuntimeError(f"{subject} ({scan}): the brain left the template grid after alignment")
    brain_voxels = aligned[aligned_mask]
    image = scale_by_brain_percentile(
        center_coronal_slice(aligned, SLICE_SIZE), brain_voxels, cfg.normalise_percentile
    )
    io.save_npy(slice_npy, image.astype(np.float32))
    io.save_png_gray(slice_png, image)
    with io.atomic_path(transform) as tmp:
        sitk.WriteTransform(rigid, str(tmp))
    volume_norm = scale_by_brain_percentile(aligned, brain_voxels, cfg.normalise_percentile)
    io.save_figure(qc_png, qc_figure(volume_norm, aligned_mask, subject))
    lap("slice")
    log.info("%s: %s", subject, ", ".join(f"{stage} {sec:.1f} s" for stage, sec in seconds.items()))
    return seconds
