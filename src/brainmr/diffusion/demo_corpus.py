"""The demo base's pretraining corpus: MNI152 coronal slices around the cohort's slice plane,
each deformed like another subject and captioned "a MRI brain" (or a variant), plus a few
non-brain images, so that the words mean something to the base before DreamBooth, as they do to
SD. The corpus is separate from the cohort: the base never sees a subject's slice."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from brainmr import SLICE_SIZE, io
from brainmr.diffusion.common import resize_image
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.preprocess.slicing import CORONAL_J, center_coronal_slice

log = logging.getLogger(__name__)

BRAIN_CAPTIONS = (
    "a MRI brain",
    "a MRI brain",
    "MRI brain, coronal",
    "a coronal MRI brain slice",
    "brain MRI",
    "a MRI brain, T1",
)
OTHER_CAPTIONS = ("a white circle", "a gray square", "noise")
NON_BRAIN_FRACTION = 0.125


def mni_coronal_volume() -> np.ndarray:
    """nilearn's MNI152 2009 template (1 mm, skull-stripped), axes (x: left->right, y, z)."""
    from nilearn import datasets

    return datasets.load_mni152_template(resolution=1).get_fdata(dtype=np.float32)


def deform_slice(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random subject-like variant: small affine pose change, smooth elastic field, a central
    swelling or shrinking (ventricle size), and a gamma/contrast/noise intensity jitter."""
    size = image.shape[0]
    grid = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2.0
    angle = np.deg2rad(rng.uniform(-6, 6))
    scale = rng.uniform(0.92, 1.08, size=2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    offset = grid - centre
    coords = np.einsum("ij,jhw->ihw", rot, offset / scale[:, None, None]) + centre
    coords += rng.uniform(-5, 5, size=(2, 1, 1))
    field = ndimage.gaussian_filter(rng.standard_normal((2, size, size)), sigma=(0, 14, 14))
    coords += field / (np.abs(field).max() + 1e-6) * rng.uniform(1.0, 4.0)
    swell_centre = np.array([centre - 15, centre], dtype=np.float32)[:, None, None]
    rel = grid - swell_centre
    coords -= rng.uniform(-0.15, 0.3) * rel * np.exp(-(rel**2).sum(0) / (2 * 18.0**2))
    warped = ndimage.map_coordinates(image, coords, order=1, mode="constant")
    warped = np.clip(warped, 0, 1) ** rng.uniform(0.75, 1.35) * rng.uniform(0.85, 1.1)
    warped += rng.normal(0, rng.uniform(0.0, 0.02), warped.shape)
    return np.clip(warped, 0, 1).astype(np.float32)


def non_brain_image(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A white circle, a gray square, or smooth noise, at random place and size."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    if kind == "a white circle":
        radius = rng.uniform(0.12, 0.35) * size
        image = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2) * rng.uniform(0.85, 1.0)
    elif kind == "a gray square":
        half = rng.uniform(0.12, 0.3) * size
        inside = (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
        image = inside * rng.uniform(0.35, 0.65)
    else:
        image = ndimage.gaussian_filter(rng.standard_normal((size, size)), rng.uniform(1, 4))
        image = 0.5 + 0.2 * image / (image.std() + 1e-6)
    return np.clip(ndimage.gaussian_filter(image.astype(np.float32), 0.7), 0, 1)


def make_pretrain_corpus(
    volume: np.ndarray, *, n_images: int, resolution: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """(images (N, R, R) in [0, 1], captions): brain slices at random coronal planes within
    20 mm of the cohort's (``brainmr.preprocess.slicing``'s cut), plus a few non-brain images."""
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(n_images):
        if rng.random() < NON_BRAIN_FRACTION:
            caption = str(rng.choice(OTHER_CAPTIONS))
            image = non_brain_image(caption, SLICE_SIZE, rng)
        else:
            caption = str(rng.choice(BRAIN_CAPTIONS))
            j = CORONAL_J + int(rng.integers(-20, 21))
            image = deform_slice(center_coronal_slice(volume, SLICE_SIZE, j), rng)
        images.append(resize_image(image, resolution).clip(0, 1))
        captions.append(caption)
    return np.stack(images), captions


def write_pretrain_corpus(out_npz: Path, *, cfg: DemoBaseConfig) -> None:
    """Write the synthetic pretraining corpus (``images``, ``captions``) as one .npz."""
    images, captions = make_pretrain_corpus(
        mni_coronal_volume(), n_images=cfg.corpus_size, resolution=cfg.resolution, seed=cfg.seed
    )
    with io.atomic_path(out_npz) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=images, captions=np.array(captions))
    log.info("pretraining corpus: %d images at %d px -> %s", len(images), cfg.resolution, out_npz)


def load_pretrain_corpus(path: Path) -> tuple[np.ndarray, list[str]]:
    with np.load(path, allow_pickle=False) as data:
        images, captions = data["images"].astype(np.float32), [str(c) for c in data["captions"]]
    if images.ndim != 3 or len(images) != len(captions) or not np.isfinite(images).all():
        raise ValueError(f"{path}: expected images (N, R, R) with N captions, finite values")
    return images, captions
