"""brainmr.diffusion.dreambooth: the training job end to end on the tiny base: what it trains
(UNet, text encoder at its own rate, prior preservation, accumulation, bf16 autocast) and what
it writes (pipeline, model card, loss log, validation grids)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny import AD_PROMPT, CN_PROMPT, dreambooth_cfg, train

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion import loss as loss_module
from brainmr.diffusion.batches import load_instance_set
from brainmr.diffusion.config import GenerateConfig
from brainmr.diffusion.generate import generate_images, load_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dreambooth_trains_unet_and_writes_loadable_pipeline(
    tmp_path, tiny_base, tiny_instances, monkeypatch
):
    seen = []
    original = loss_module.encode_prompts
    monkeypatch.setattr(
        loss_module, "encode_prompts", lambda te, tok, p: seen.extend(p) or original(te, tok, p)
    )
    out = tmp_path / "model"
    train(
        base_model=str(tiny_base),
        instances=tiny_instances,
        pipeline_dir=out,
        work_dir=tmp_path / "work",
        cfg=dreambooth_cfg(),
    )
    assert sorted(seen) == [AD_PROMPT, CN_PROMPT]  # whole prompts reach the text encoder
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    tuned = StableDiffusionPipeline.from_pretrained(str(out))
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(base.unet.parameters(), tuned.unet.parameters(), strict=True)
    )
    assert diff > 1e-4
    for a, b in zip(base.vae.parameters(), tuned.vae.parameters(), strict=True):
        assert torch.equal(a, b)  # frozen parts untouched
    card = (out / "README.md").read_text()
    assert AD_PROMPT in card and load_instance_set(tiny_instances).digest in card
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert loss.step.tolist() == [1, 2, 3] and np.isfinite(loss.loss).all()
    assert (tmp_path / "work" / "loss.png").stat().st_size > 0
    # validation_steps 0: one grid, at the end; one row per instance prompt
    with np.load(tmp_path / "work" / "validation" / "step-000003.npz") as grid:
        assert grid["images"].shape == (2, 1, 32, 32)
        assert sorted(grid["prompts"]) == [AD_PROMPT, CN_PROMPT]
    assert (tmp_path / "work" / "validation.png").stat().st_size > 0


def test_prior_preservation_text_encoder_and_accumulation(tmp_path, tiny_base, tiny_instances):
    cfg = dreambooth_cfg(
        max_train_steps=2,
        with_prior_preservation=True,
        num_class_images=3,
        train_text_encoder=True,
        gradient_checkpointing=True,
        gradient_accumulation_steps=2,
    )
    kw = dict(base_model=str(tiny_base), instances=tiny_instances, cfg=cfg)
    train(pipeline_dir=tmp_path / "model", work_dir=tmp_path / "work", **kw)
    classes = sorted((tmp_path / "work" / "class_images").glob("class_*.png"))
    assert len(classes) == 3 and io.load_png_gray(classes[0]).shape == (32, 32)
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    pairs = zip(base.text_encoder.parameters(), tuned.text_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # the text encoder was trained too
    assert pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t").step.tolist() == [1, 2]


def test_text_encoder_learns_at_its_own_rate(tmp_path, tiny_base, tiny_instances):
    """text_encoder_learning_rate drives the text encoder alone: with the UNet's rate at 0 the
    UNet stays the base's and the text encoder moves."""
    cfg = dreambooth_cfg(
        max_train_steps=2,
        train_text_encoder=True,
        learning_rate=0.0,
        text_encoder_learning_rate=1e-3,
    )
    train(pipeline_dir=tmp_path / "model", base_model=str(tiny_base), instances=tiny_instances,
          cfg=cfg, work_dir=tmp_path / "work")  # fmt: skip
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    unet = zip(base.unet.parameters(), tuned.unet.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in unet)
    text = zip(base.text_encoder.parameters(), tuned.text_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in text)


def test_bf16_autocast_on_cpu_end_to_end(tmp_path, tiny_base, tiny_instances, monkeypatch):
    """Half precision through Accelerate on a CPU: train, save, generate (the branches a GPU run
    takes, run in CI)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    modes = []
    original = Accelerator.__init__

    def record(self, *args, **kwargs):
        modes.append(kwargs.get("mixed_precision"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "__init__", record)
    cfg = dreambooth_cfg(max_train_steps=2, mixed_precision="bf16", train_text_encoder=True)
    # Accelerate keeps one state per process (a workflow job is one process): reset it here
    AcceleratorState._reset_state(True)
    try:
        train(
            base_model=str(tiny_base),
            instances=tiny_instances,
            pipeline_dir=tmp_path / "model",
            work_dir=tmp_path / "work",
            cfg=cfg,
        )
    finally:
        AcceleratorState._reset_state(True)
    assert modes == ["bf16"]
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert np.isfinite(loss.loss).all()
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    assert tuned.unet.dtype == torch.float32  # master weights stay float32
    gen = stage_config(
        GenerateConfig, "generate", n_images=2, num_inference_steps=2, mixed_precision="bf16"
    )
    pipe = load_pipeline(tmp_path / "model", scheduler="ddim", mixed_precision="bf16")
    assert pipe.dtype == torch.bfloat16
    generate_images(
        model_dir=tmp_path / "model",
        prompt=CN_PROMPT,
        condition="brain",
        group="CN",
        out_dir=tmp_path / "images",
        cfg=gen,
        image_size=32,
    )
    image = io.load_png_gray(next((tmp_path / "images").glob("*.png")))
    assert image.shape == (32, 32) and np.isfinite(image).all() and image.std() > 0
