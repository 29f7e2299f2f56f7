"""brainmr.diffusion.generate: image sets that are reproducible, independent of batching, and
drawn per class from each class's own model and settings."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from diffusers import StableDiffusionPipeline
from tiny import AD_PROMPT, CN_PROMPT

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion.config import GenerateConfig
from brainmr.diffusion.generate import (
    generate_image_sets,
    generate_images,
    make_scheduler,
    regenerate_image,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["dpmsolver++", "ddim", "pndm", "ddpm"])
def test_scheduler_names(tiny_base, name):
    sched = make_scheduler(
        name, StableDiffusionPipeline.from_pretrained(str(tiny_base)).scheduler.config
    )
    assert type(sched).__name__.lower().startswith(name.rstrip("+")[:4])
    assert name != "dpmsolver++" or sched.config.algorithm_type == "dpmsolver++"


def test_generation_is_reproducible_and_independent_of_batching(tmp_path, tiny_base):
    def gen_cfg(batch_size: int) -> GenerateConfig:
        return stage_config(
            GenerateConfig,
            "generate",
            n_images=3,
            batch_size=batch_size,
            num_inference_steps=3,
            guidance_scale=2.0,
        )

    cfg = gen_cfg(3)
    kw = dict(model_dir=tiny_base, prompt=AD_PROMPT, condition="brain", group="AD", image_size=160)
    generate_images(out_dir=tmp_path / "batched", cfg=cfg, **kw)
    generate_images(out_dir=tmp_path / "again", cfg=cfg, **kw)
    generate_images(out_dir=tmp_path / "single", cfg=gen_cfg(1), **kw)
    manifest = pd.read_csv(tmp_path / "batched" / "manifest.tsv", sep="\t")
    assert list(manifest.columns) == ["file", "generator_seed", "prompt", "condition", "group"]
    assert manifest.file.tolist() == ["brain_AD_000.png", "brain_AD_001.png", "brain_AD_002.png"]
    assert manifest.prompt.tolist() == [AD_PROMPT] * 3 and manifest.generator_seed.tolist() == [
        0,
        1,
        2,
    ]
    batched = [io.load_png_gray(tmp_path / "batched" / f) for f in manifest.file]
    assert batched[0].shape == (160, 160)
    assert not np.allclose(batched[0], batched[1])  # different seeds, different images
    for f, image in zip(manifest.file, batched, strict=True):
        assert np.array_equal(io.load_png_gray(tmp_path / "again" / f), image)
        assert np.abs(io.load_png_gray(tmp_path / "single" / f) - image).max() <= 1.5 / 255
    alone = regenerate_image(model_dir=tiny_base, prompt=AD_PROMPT, index=2, cfg=cfg)
    assert np.abs(alone - batched[2]).max() <= 1.5 / 255


def test_each_class_is_generated_with_its_own_model_and_settings(tmp_path, tiny_base):
    """per_class_models and per-class guidance/negative prompt: one call writes each class's set
    from its own pipeline with its own settings, the same images as a call per class."""
    common = dict(n_images=2, batch_size=2, num_inference_steps=3)
    cfg_ad = stage_config(GenerateConfig, "generate", guidance_scale=2.0, **common)
    cfg_cn = stage_config(
        GenerateConfig, "generate", guidance_scale=4.0, negative_prompt=AD_PROMPT, **common
    )
    other = tmp_path / "other_model"
    shutil.copytree(tiny_base, other)
    generate_image_sets(
        model_dirs={"AD": tiny_base, "CN": other},
        prompts={"AD": AD_PROMPT, "CN": CN_PROMPT},
        condition="separate",
        out_dirs={"AD": tmp_path / "AD", "CN": tmp_path / "CN"},
        cfgs={"AD": cfg_ad, "CN": cfg_cn},
    )
    for group, model, cfg, prompt in (
        ("AD", tiny_base, cfg_ad, AD_PROMPT),
        ("CN", other, cfg_cn, CN_PROMPT),
    ):
        kw = dict(model_dir=model, prompt=prompt, condition="separate", group=group, cfg=cfg)
        generate_images(out_dir=tmp_path / f"alone_{group}", **kw)
        for i in range(2):
            name = f"separate_{group}_{i:03d}.png"
            a = io.load_png_gray(tmp_path / group / name)
            assert np.array_equal(a, io.load_png_gray(tmp_path / f"alone_{group}" / name))
    # the CN settings matter: the same CN prompt without them gives other images
    plain = stage_config(GenerateConfig, "generate", guidance_scale=2.0, **common)
    generate_images(
        model_dir=other,
        prompt=CN_PROMPT,
        condition="separate",
        group="CN",
        cfg=plain,
        out_dir=tmp_path / "plain_CN",
    )
    name = "separate_CN_000.png"
    assert not np.array_equal(
        io.load_png_gray(tmp_path / "CN" / name), io.load_png_gray(tmp_path / "plain_CN" / name)
    )
    with pytest.raises(ValueError, match="settings for"):
        generate_image_sets(
            model_dirs={"AD": tiny_base},
            prompts={"AD": AD_PROMPT},
            condition="x",
            out_dirs={"AD": tmp_path / "x"},
            cfgs={},
        )
