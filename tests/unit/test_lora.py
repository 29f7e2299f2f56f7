"""brainmr.diffusion.lora: adapters trained and merged into a plain pipeline; checkpoints that
hold the adapters alone (not the frozen UNet) and resume to the weights of an unkilled run."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file
from tiny import AD_PROMPT, dreambooth_cfg, killed_after_checkpoint, run_cfg, train

from brainmr.config import stage_config
from brainmr.diffusion.config import GenerateConfig
from brainmr.diffusion.generate import generate_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _differs(a, b) -> set[str]:
    """Names of the parameters that differ between two models of one architecture."""
    pb = dict(b.named_parameters())
    return {n for n, p in a.named_parameters() if not torch.equal(p, pb[n])}


def _state_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def test_lora_trains_adapters_merged_into_a_plain_pipeline(tmp_path, tiny_base, tiny_instances):
    cfg = dreambooth_cfg(
        max_train_steps=3,
        learning_rate=5e-2,
        lora_rank=4,
        train_text_encoder=True,
        lora_text_encoder=True,
    )
    run = run_cfg(validation_steps=2, keep_checkpoints=True)
    kw = dict(base_model=str(tiny_base), instances=tiny_instances, cfg=cfg, run=run)
    train(pipeline_dir=tmp_path / "model", work_dir=tmp_path / "work", **kw)
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    changed = _differs(base.unet, tuned.unet)
    assert changed and all(re.search(r"attn\d\.to_(q|k|v|out\.0)\.weight$", n) for n in changed)
    text = _differs(base.text_encoder, tuned.text_encoder)
    assert text and all(re.search(r"(q|k|v|out)_proj\.weight$", n) for n in text)
    assert not any("lora" in n for n, _ in tuned.unet.named_parameters())
    # validation every 2 steps and at the end
    assert sorted(p.name for p in (tmp_path / "work" / "validation").glob("*.npz")) == [
        "step-000002.npz",
        "step-000003.npz",
    ]
    # the checkpoint holds the adapters, not the frozen models (nor Accelerate's model files)
    checkpoint = tmp_path / "work" / "checkpoints" / "step-2"
    weights = sorted(p.name for p in checkpoint.glob("*.safetensors"))
    assert weights == ["text_encoder_lora.safetensors", "unet_lora.safetensors"]
    unet_lora = load_file(str(checkpoint / "unet_lora.safetensors"))
    assert unet_lora and all(".lora_A." in k or ".lora_B." in k for k in unet_lora)
    assert {k.rsplit(".lora_", 1)[0] for k in unet_lora} == {
        n.rsplit(".", 1)[0] for n in changed
    }  # one adapter per changed projection
    assert (checkpoint / "unet_lora.safetensors").stat().st_size < 0.2 * _state_bytes(base.unet)
    # the artifact generates with no LoRA code
    gen = stage_config(GenerateConfig, "generate", n_images=2, batch_size=2, num_inference_steps=2)
    generate_images(
        model_dir=tmp_path / "model",
        prompt=AD_PROMPT,
        condition="brain",
        group="AD",
        out_dir=tmp_path / "images",
        cfg=gen,
        image_size=32,
    )
    assert len(list((tmp_path / "images").glob("*.png"))) == 2


def test_killed_lora_run_resumes_to_the_same_weights(tmp_path, tiny_base, tiny_instances):
    """LoRA on the UNet with the text encoder fully trained: the checkpoint holds the UNet's
    adapters and the whole text encoder (Accelerate's model file), and a run killed after it
    ends with exactly the weights of a run that was not."""
    cfg = dreambooth_cfg(learning_rate=5e-2, lora_rank=4, train_text_encoder=True)
    kw = dict(base_model=str(tiny_base), instances=tiny_instances, cfg=cfg)
    train(pipeline_dir=tmp_path / "a", work_dir=tmp_path / "work_a", **kw)
    with killed_after_checkpoint(2), pytest.raises(KeyboardInterrupt):
        train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", **kw)
    checkpoint = tmp_path / "work_b" / "checkpoints" / "step-2"
    text_encoder = load_file(str(checkpoint / "model.safetensors"))
    base = StableDiffusionPipeline.from_pretrained(str(tiny_base))
    assert set(text_encoder) == set(base.text_encoder.state_dict())  # the text encoder alone
    assert all("lora_" in k for k in load_file(str(checkpoint / "unet_lora.safetensors")))
    assert sorted(p.name for p in checkpoint.glob("*.safetensors")) == [
        "model.safetensors",
        "unet_lora.safetensors",
    ]
    train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", **kw)
    a = StableDiffusionPipeline.from_pretrained(str(tmp_path / "a"))
    b = StableDiffusionPipeline.from_pretrained(str(tmp_path / "b"))
    assert _differs(a.unet, b.unet) == set() and _differs(a.text_encoder, b.text_encoder) == set()
    assert _differs(base.unet, b.unet)  # it did train


def test_lora_checkpoint_at_sd15_size_is_adapters_of_a_few_mb():
    """SD 1.5's UNet (from its config, on the meta device: no memory, no download) with rank-4
    adapters on the attention projections: the adapters a checkpoint holds are 797,184 numbers,
    counted by hand below, against 859.5 M in the frozen UNet it no longer holds."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from peft.utils import get_peft_model_state_dict

    from brainmr.diffusion.lora import LORA_UNET_MODULES, add_lora

    with init_empty_weights():
        unet = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        base = sum(p.numel() for p in unet.parameters())
        add_lora(unet, rank=4, target_modules=LORA_UNET_MODULES)
    adapters = sum(t.numel() for t in get_peft_model_state_dict(unet).values())
    # per transformer block of width C, rank r: self-attention q, k, v, out 4 x 2rC; cross
    # attention q, out 2 x 2rC and k, v r (768 + C) each; blocks: 5 at 320, 5 at 640, 6 at 1280
    r, blocks = 4, {320: 5, 640: 5, 1280: 6}
    assert adapters == sum(n * r * (14 * c + 2 * 768) for c, n in blocks.items()) == 797_184
    assert base == 859_520_964
    # fp32 adapters plus AdamW's two moments: the checkpoint's weights and optimizer state
    assert adapters * 4 * 3 / 1e6 == pytest.approx(9.57, abs=0.01)
