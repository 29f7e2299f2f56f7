"""Skull stripping: a brain mask in the scan's own voxel grid.

- ``deepbet``: deepbet's CNN (weights ship in its wheel, so it runs offline), on the CPU.
- ``none``: the scan is already skull-stripped: mask = the nonzero voxels when the background is
  exactly 0 (at least 10% zeros), otherwise voxels above half the Otsu threshold; then the
  largest connected component with its holes filled.
- ``command``: any external tool (HD-BET, SynthStrip, PCSS...): ``strip_command`` is run by the
  shell with ``{input}`` (a NIfTI copy of the scan) and ``{output}`` (where the tool must write
  the brain mask) filled in.
"""

from __future__ import annotations

import functools
import logging
import shlex
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.volume import Volume

log = logging.getLogger(__name__)
STRIP_MODES = ("deepbet", "none", "command")


class SkullStripError(RuntimeError):
    """The skull strip failed: the message names the scan and the cause."""


@functools.lru_cache(maxsize=1)
def _deepbet_model():
    """deepbet's networks, loaded once per process (CPU)."""
    from deepbet import BrainExtraction

    return BrainExtraction(no_gpu=True)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a set of values (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a mask, holes filled."""
    labels, n = ndi.label(mask)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndi.binary_fill_holes(labels == int(np.argmax(sizes)))


def threshold_mask(data: np.ndarray) -> np.ndarray:
    """Brain mask of an image that is already skull-stripped (the ``none`` mode)."""
    if np.mean(data == 0) >= 0.1:  # zero background: stripped by someone else
        mask = data != 0
    else:
        mask = data > 0.5 * otsu_threshold(data.ravel()[:: max(1, data.size // 1_000_000)])
    return largest_component(mask)


def deepbet_mask(volume: Volume, threshold: float) -> np.ndarray:
    image = nib.Nifti1Image(volume.data, volume.affine)
    _, mask_image, _ = _deepbet_model().run(image, threshold=threshold)
    return np.asarray(mask_image.dataobj) > 0


def command_mask(volume: Volume, command: str) -> np.ndarray:
    """Run an external skull strip on a NIfTI copy of the volume (never on the original file)."""
    if "{output}" not in command:
        raise SkullStripError(
            f"{volume.source}: preprocess.strip_command must contain {{output}} (got {command!r})"
        )
    with tempfile.TemporaryDirectory(prefix="brainmr_strip_") as tmp:
        input_path = Path(tmp) / "input.nii.gz"
        output_path = Path(tmp) / "mask.nii.gz"
        nib.save(nib.Nifti1Image(volume.data, volume.affine), input_path)
        # plain replacement: other braces in the command (${VAR}, awk '{print}') stay as they are
        line = command.replace("{input}", shlex.quote(str(input_path))).replace(
            "{output}", shlex.quote(str(output_path))
        )
        log.info("skull strip: %s", line)
        result = subprocess.run(line, shell=True, capture_output=True, text=True)
        if result.returncode != 0:
            raise SkullStripError(
                f"{volume.source}: skull strip command exited with status {result.returncode}: "
                f"{line}\n{(result.stderr or result.stdout)[-2000:]}"
            )
        if not output_path.is_file():
            raise SkullStripError(
                f"{volume.source}: skull strip command wrote no mask at {{output}}: {line}"
            )
        mask_image = nib.load(output_path)
        if not np.allclose(mask_image.affine, volume.affine, atol=1e-3):
            # a tool that reorients its output: bring the mask back to the scan's axes
            to_scan = nib.orientations.ornt_transform(
                nib.io_orientation(mask_image.affine), nib.io_orientation(volume.affine)
            )
            mask_image = mask_image.as_reoriented(to_scan)
        data = np.asanyarray(mask_image.dataobj)
        data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
        if data.shape != volume.data.shape:
            raise SkullStripError(
                f"{volume.source}: the mask from the skull strip command has shape {data.shape}, "
                f"the scan {volume.data.shape}"
            )
        return data > 0.5


def skull_strip(volume: Volume, cfg: PreprocessConfig) -> np.ndarray:
    """Boolean brain mask of ``volume`` in its own voxel grid, by ``cfg.skull_strip``."""
    if cfg.skull_strip == "deepbet":
        mask = deepbet_mask(volume, cfg.deepbet_threshold)
    elif cfg.skull_strip == "none":
        mask = threshold_mask(volume.data)
    elif cfg.skull_strip == "command":
        if not cfg.strip_command.strip():
            raise SkullStripError("preprocess.skull_strip is 'command' but strip_command is empty")
        mask = command_mask(volume, cfg.strip_command)
    else:
        raise ValueError(f"unknown skull_strip {cfg.skull_strip!r}; expected one of {STRIP_MODES}")
    if not mask.any():
        raise SkullStripError(f"{volume.source}: skull strip ({cfg.skull_strip}) found no brain")
    return mask
