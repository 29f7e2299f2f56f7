"""brainmr.diffusion.demo_pretrain: the demo base's VAE, then UNet and text encoder, trained on
a corpus; crops for the VAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny import TINY_BASE

from brainmr.config import stage_config
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_pretrain import pretrain_demo_base, random_crop

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vae_trains_on_random_crops_of_whole_batches():
    batch = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    rng = np.random.default_rng(0)
    crops = [random_crop(batch, 4, rng) for _ in range(20)]
    assert all(c.shape == (2, 3, 4, 4) for c in crops)
    corners = {(int(c[0, 0, 0, 0]) // 8, int(c[0, 0, 0, 0]) % 8) for c in crops}
    assert len(corners) > 3 and all(r <= 4 and col <= 4 for r, col in corners)  # varied, inside
    top, left = next(iter(corners))
    assert any(torch.equal(c, batch[..., top : top + 4, left : left + 4]) for c in crops)
    assert random_crop(batch, None, rng) is batch and random_crop(batch, 8, rng) is batch


def test_pretraining_fits_the_latent_scale_and_logs_the_loss(tmp_path, tiny_base):
    cfg = stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, vae_crop=16, vae_loss="l1")
    rng = np.random.default_rng(0)
    images = rng.random((16, 32, 32), dtype=np.float32)  # any corpus will do here
    captions = np.array(["a MRI brain", "noise"] * 8)
    np.savez_compressed(tmp_path / "corpus.npz", images=images, captions=captions)
    pretrain_demo_base(
        base_dir=tiny_base,
        corpus_npz=tmp_path / "corpus.npz",
        out_dir=tmp_path / "pre",
        cfg=cfg,
    )
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "pre"))
    assert pipe.vae.config.scaling_factor != pytest.approx(0.18215)
    assert (tmp_path / "pre" / "pretrain_loss.tsv").is_file()
