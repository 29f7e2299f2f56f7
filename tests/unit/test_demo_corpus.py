"""brainmr.diffusion.demo_corpus: the demo base's pretraining corpus, cut from the MNI152
template with the cohort's own slicing (brainmr.preprocess.slicing)."""

from __future__ import annotations

import numpy as np
from tiny import TINY_BASE

from brainmr import SLICE_SIZE
from brainmr.config import stage_config
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_corpus import load_pretrain_corpus, write_pretrain_corpus
from brainmr.preprocess.slicing import CORONAL_J, center_coronal_slice
from brainmr.preprocess.template import TEMPLATE_SHAPE


def _coronal_slice_as_the_corpus_cut_it(volume, y, size=SLICE_SIZE):
    """The corpus's own slicer before it used brainmr.preprocess.slicing (kept as the known
    answer: the corpus, hence the demo base, must not change)."""
    plane = volume[:, y, :].T[::-1, ::-1]
    out = np.zeros((size, size), np.float32)
    rows, cols = plane.shape
    r0, c0 = (rows - size) // 2, (cols - size) // 2
    src = plane[max(r0, 0) : max(r0, 0) + size, max(c0, 0) : max(c0, 0) + size]
    out[max(-r0, 0) : max(-r0, 0) + src.shape[0], max(-c0, 0) : max(-c0, 0) + src.shape[1]] = src
    return out


def test_corpus_planes_are_the_cohorts_slicing_at_other_depths():
    volume = np.random.default_rng(0).random(TEMPLATE_SHAPE, dtype=np.float32)
    assert CORONAL_J == TEMPLATE_SHAPE[1] // 2  # the corpus's planes centre on the cohort's
    for j in range(CORONAL_J - 20, CORONAL_J + 21):  # every plane the corpus draws
        new = center_coronal_slice(volume, SLICE_SIZE, j)
        old = _coronal_slice_as_the_corpus_cut_it(volume, j)
        assert new.dtype == old.dtype and new.tobytes() == old.tobytes(), j
    padded = center_coronal_slice(volume, 200)  # larger than the plane: zero-padded alike
    assert np.array_equal(padded, _coronal_slice_as_the_corpus_cut_it(volume, CORONAL_J, 200))


def test_pretrain_corpus_holds_brains_and_other_images(tmp_path):
    cfg = stage_config(DemoBaseConfig, "demo_base", **TINY_BASE)
    write_pretrain_corpus(tmp_path / "corpus.npz", cfg=cfg)
    images, captions = load_pretrain_corpus(tmp_path / "corpus.npz")
    assert images.shape == (16, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert any("a MRI brain" in c for c in captions)
    brains = images[[("brain" in c) for c in captions]]
    assert brains.mean() > 0.1 and brains[:, 0, :].mean() < 0.05  # brain in the middle, dark edge
