"""brainmr.diffusion on tiny in-process models (CPU, seconds): the tokenizer, the pretraining
corpus, DreamBooth (artifact, kill and resume, caching, prompts) and generation."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny import TINY_BASE

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion import checkpoints as ckpt
from brainmr.diffusion import demo_base as db_base
from brainmr.diffusion import dreambooth as db
from brainmr.diffusion.common import cpu_generator, noise_target, tokenize
from brainmr.diffusion.config import (
    DemoBaseConfig,
    DreamBoothConfig,
    DreamBoothRunConfig,
    GenerateConfig,
)
from brainmr.diffusion.demo_base import (
    build_demo_base,
    build_models,
    build_tokenizer,
    load_pretrain_corpus,
    pretrain_demo_base,
    random_crop,
    write_pretrain_corpus,
)
from brainmr.diffusion.dreambooth import train_dreambooth
from brainmr.diffusion.generate import (
    generate_image_sets,
    generate_images,
    make_scheduler,
    regenerate_image,
)
from brainmr.diffusion.identity import base_model_digest

AD_PROMPT = "AD, a MRI brain, ADNI2"
CN_PROMPT = "CN, a MRI brain, ADNI2"


def dreambooth_kwargs(overrides: dict) -> dict:
    return DREAMBOOTH_TEST | overrides


def dreambooth_cfg(**overrides) -> DreamBoothConfig:
    return stage_config(DreamBoothConfig, "dreambooth", **dreambooth_kwargs(overrides))


DREAMBOOTH_TEST = dict(
    resolution=32,
    max_train_steps=3,
    train_batch_size=2,
    learning_rate=1e-3,
)
RUN_TEST = dict(checkpointing_steps=2, validation_steps=0, validation_images=1)
GEN_TEST = dict(num_inference_steps=2)


def run_cfg(**overrides) -> DreamBoothRunConfig:
    return stage_config(DreamBoothRunConfig, "dreambooth", **(RUN_TEST | overrides))


def train(*, run: DreamBoothRunConfig | None = None, **kw) -> None:
    """train_dreambooth with the tests' checkpoint and validation settings (2-step sampling)."""
    gen_cfg = stage_config(GenerateConfig, "generate", **GEN_TEST)
    train_dreambooth(run=run or run_cfg(), gen_cfg=gen_cfg, **kw)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "demo"
    build_demo_base(out, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE))
    return out


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """Eight 160 x 160 slices (smooth blobs), AD and CN, with the paper's prompts."""
    folder = tmp_path_factory.mktemp("slices")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:160, 0:160]
    rows = []
    for i in range(8):
        group = "AD" if i % 2 else "CN"
        radius = 50 + 5 * rng.standard_normal()
        image = np.exp(-((yy - 80) ** 2 + (xx - 80) ** 2) / (2 * radius**2)).astype(np.float32)
        path = folder / f"sub{i}.npy"
        io.save_npy(path, image)
        prompt = AD_PROMPT if group == "AD" else CN_PROMPT
        rows.append({"path": str(path), "group": group, "prompt": prompt, "subject": f"S{i}"})
    return pd.DataFrame(rows)


def test_tokenizer_gives_distinct_words_distinct_ids(tmp_path):
    tokenizer = build_tokenizer(tmp_path / "tok")
    words = ["ad", "cn", "a", "mri", "brain", "adni", "white", "circle", "noise"]
    ids = [tokenizer(w, add_special_tokens=False).input_ids for w in words]
    assert all(len(i) == 1 for i in ids), ids  # each listed word is one token
    assert len({i[0] for i in ids}) == len(words)
    unknown = tokenizer("zebra qxz", add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in unknown and len(unknown) > 2  # spelled out, not unknown


def test_word_merges_break_ties_by_text_not_by_order():
    merges = db_base.word_merges(["ab", "ba", "abc"])
    assert merges == [("a", "b"), ("a", "b</w>"), ("ab", "c</w>"), ("b", "a</w>")]
    assert db_base.word_merges(["abc", "ba", "ab"]) == merges


def test_tokenizer_files_are_the_same_in_every_process(tmp_path):
    """Token ids decide which embedding row a word trains: two processes (different hash seeds)
    must write the same files, or the demo base differs between runs."""
    code = "import sys; from pathlib import Path; from brainmr.diffusion.demo_base import "
    code += "write_tokenizer_files as w; w(Path(sys.argv[1]))"
    for name, seed in (("one", "1"), ("two", "2")):
        env = os.environ | {"PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    for file in ("vocab.json", "merges.txt"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_prompts_with_commas_are_never_split(base_dir, instances):
    tokenizer = StableDiffusionPipeline.from_pretrained(str(base_dir)).tokenizer
    assert db.load_instance_set(instances).prompts == list(instances.prompt)
    whole = tokenize(tokenizer, [AD_PROMPT])[0]
    direct = tokenizer(AD_PROMPT, padding="max_length", max_length=77).input_ids
    assert whole.tolist() == direct
    comma = tokenizer(",", add_special_tokens=False).input_ids[0]
    assert (whole == comma).sum() == 2  # both commas inside one sequence
    cn = tokenize(tokenizer, [CN_PROMPT])[0]
    assert (whole != cn).sum() == 1  # AD and CN differ in exactly their class token


def test_batch_order_is_a_pure_function_of_seed_and_step():
    kw = dict(n_items=5, batch_size=2, accumulation=1)
    seq = np.concatenate([db.batch_indices(s, 0, seed=3, **kw) for s in range(5)])
    assert sorted(seq[:5]) == list(range(5)) and sorted(seq[5:]) == list(range(5))  # epochs
    assert np.array_equal(db.batch_indices(4, 0, seed=3, **kw), seq[8:10])
    assert not np.array_equal(
        seq, np.concatenate([db.batch_indices(s, 0, seed=4, **kw) for s in range(5)])
    )


def test_bad_instance_slice_names_file_and_subject(tmp_path, instances):
    bad = tmp_path / "bad.npy"
    io.save_npy(bad, np.zeros((4, 160, 160), np.float32))
    table = pd.concat(
        [
            instances,
            pd.DataFrame(
                [{"path": str(bad), "group": "AD", "prompt": AD_PROMPT, "subject": "S99"}]
            ),
        ]
    )
    with pytest.raises(ValueError, match=r"bad\.npy.*S99"):
        db.load_instance_set(table)
    with pytest.raises(ValueError, match="prompt"):
        db.load_instance_set(instances.drop(columns="prompt"))


def test_dreambooth_trains_unet_and_writes_loadable_pipeline(
    tmp_path, base_dir, instances, monkeypatch
):
    seen = []
    original = db.encode_prompts
    monkeypatch.setattr(
        db, "encode_prompts", lambda te, tok, p: seen.extend(p) or original(te, tok, p)
    )
    out = tmp_path / "model"
    train(
        base_model=str(base_dir),
        instances=instances,
        pipeline_dir=out,
        work_dir=tmp_path / "work",
        cfg=dreambooth_cfg(),
        threads=2,
    )
    assert sorted(seen) == [AD_PROMPT, CN_PROMPT]  # whole prompts reach the text encoder
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    tuned = StableDiffusionPipeline.from_pretrained(str(out))
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(base.unet.parameters(), tuned.unet.parameters(), strict=True)
    )
    assert diff > 1e-4
    for a, b in zip(base.vae.parameters(), tuned.vae.parameters(), strict=True):
        assert torch.equal(a, b)  # frozen parts untouched
    card = (out / "README.md").read_text()
    assert AD_PROMPT in card and db.load_instance_set(instances).digest in card
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert loss.step.tolist() == [1, 2, 3] and np.isfinite(loss.loss).all()
    assert (tmp_path / "work" / "loss.png").stat().st_size > 0
    # validation_steps 0: one grid, at the end; one row per instance prompt
    with np.load(tmp_path / "work" / "validation" / "step-000003.npz") as grid:
        assert grid["images"].shape == (2, 1, 32, 32)
        assert sorted(grid["prompts"]) == [AD_PROMPT, CN_PROMPT]
    assert (tmp_path / "work" / "validation.png").stat().st_size > 0


def _batches_logged(records) -> dict[int, str]:
    found = {}
    for r in records:
        m = re.match(r"step (\d+) micro 0 batch (.*)", r.getMessage())
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def test_killed_run_resumes_from_checkpoint_with_same_data_order(
    tmp_path, base_dir, instances, monkeypatch, caplog
):
    cfg = dreambooth_cfg(max_train_steps=6, train_batch_size=3)  # 8 items: batches cross epochs
    kw = dict(base_model=str(base_dir), instances=instances, cfg=cfg, threads=2)
    caplog.set_level(logging.DEBUG, logger="brainmr.diffusion")
    train(pipeline_dir=tmp_path / "a", work_dir=tmp_path / "work_a", **kw)
    reference = _batches_logged(caplog.records)
    expected = pd.read_csv(tmp_path / "work_a" / "loss.tsv", sep="\t")
    assert not (tmp_path / "work_a" / "checkpoints").exists()  # removed once the model is saved

    save = ckpt.save_checkpoint

    def save_then_die(accelerator, folder, step, *args):
        save(accelerator, folder, step, *args)
        if step == 4:
            raise KeyboardInterrupt("killed after checkpoint 4")

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_die)
    keep_two = run_cfg(checkpoints_total_limit=2, keep_checkpoints=True)
    with pytest.raises(KeyboardInterrupt):
        train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", run=keep_two, **kw)
    assert not (tmp_path / "b").exists()
    checkpoints = tmp_path / "work_b" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2", "step-4"]
    (checkpoints / ".step-6.half-written").mkdir()  # a save killed half-way

    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    caplog.clear()
    train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", run=keep_two, **kw)
    assert "step 4" in caplog.text and "resuming" in caplog.text
    resumed = _batches_logged(caplog.records)
    assert sorted(resumed) == [5, 6]  # steps 1-4 were not redone
    assert all(resumed[s] == reference[s] for s in resumed)
    got = pd.read_csv(tmp_path / "work_b" / "loss.tsv", sep="\t")
    assert got.step.tolist() == list(range(1, 7))
    np.testing.assert_allclose(got.loss, expected.loss, rtol=1e-4)  # same batches, noise, weights
    # the limit holds, the half-written folder is gone, kept checkpoints stay after the save
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-4", "step-6"]
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "b"))


class _RecordingAccelerator:
    """Stands in for Accelerate: records which checkpoints exist while a new one is written."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def save_state(self, path):
        self.seen.append(sorted(p.name for p in self.folder.glob("step-*")))
        (Path(path) / "model.safetensors").write_bytes(b"x")


@pytest.mark.parametrize(
    ("limit", "during", "after"),
    [
        (1, ["step-4"], ["step-6"]),
        (2, ["step-4"], ["step-4", "step-6"]),
        (3, ["step-2", "step-4"], ["step-2", "step-4", "step-6"]),
    ],
)
def test_checkpoints_are_pruned_before_a_new_one_is_written(tmp_path, limit, during, after):
    identity = {"instances": "a", "config": "b"}
    accelerator = _RecordingAccelerator(tmp_path)
    other_run = tmp_path / "step-1"
    other_run.mkdir()
    io.write_json(other_run / "meta.json", {"instances": "other", "config": "b", "step": 1})
    for step in (2, 4):
        with io.atomic_dir(tmp_path / f"step-{step}") as tmp:
            io.write_json(Path(tmp) / "meta.json", identity | {"step": step, "history": []})
    ckpt.save_checkpoint(accelerator, tmp_path, 6, identity, [], limit)
    # the oldest went first (and another run's at once), never the last valid one
    assert accelerator.seen == [during]
    assert sorted(p.name for p in tmp_path.glob("step-*")) == after


def test_changed_base_model_is_never_resumed(tmp_path, instances, caplog):
    """Rebuilding the base at the same path (as a changed demo_base does) retrains from step 0
    and renews the class images, instead of pairing an old UNet with the new VAE."""
    base = tmp_path / "base"
    build_demo_base(base, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE))
    digest = base_model_digest(base)
    shutil.copytree(base, tmp_path / "copy")
    assert base_model_digest(tmp_path / "copy") == digest  # where it lives does not count
    cfg = dreambooth_cfg(max_train_steps=2, with_prior_preservation=True, num_class_images=2)
    kw = dict(instances=instances, cfg=cfg, work_dir=tmp_path / "work")
    keep = run_cfg(keep_checkpoints=True)
    train(base_model=str(base), pipeline_dir=tmp_path / "first", run=keep, **kw)
    stamp = tmp_path / "work" / "class_images" / "class_images.json"
    assert json.loads(stamp.read_text())["base_model"] == digest

    shutil.rmtree(base)
    build_demo_base(base, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, seed=1))
    assert base_model_digest(base) != digest
    caplog.set_level(logging.INFO, logger="brainmr.diffusion")
    train(base_model=str(base), pipeline_dir=tmp_path / "second", run=keep, **kw)
    assert "resuming" not in caplog.text
    assert json.loads(stamp.read_text())["base_model"] == base_model_digest(base)
    first = StableDiffusionPipeline.from_pretrained(str(tmp_path / "first"))
    second = StableDiffusionPipeline.from_pretrained(str(tmp_path / "second"))
    new_base = StableDiffusionPipeline.from_pretrained(str(base))
    assert not torch.equal(first.unet.conv_in.weight, second.unet.conv_in.weight)
    # the second model is the new base fine-tuned: close to it, far from the first
    near = (second.unet.conv_in.weight - new_base.unet.conv_in.weight).abs().max()
    far = (second.unet.conv_in.weight - first.unet.conv_in.weight).abs().max()
    assert near < far


def test_cached_latents_give_the_same_loss(base_dir, instances):
    from diffusers import DDPMScheduler

    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    data = db.load_instance_set(instances)
    pixels = db.slices_to_pixels(data.slices, 32)
    sched = DDPMScheduler.from_config(base.scheduler.config)
    idx = torch.tensor([0, 3, 5])
    losses = []
    for cached in (True, False):
        inputs = db.TrainingInputs(
            vae=base.vae,
            text_encoder=base.text_encoder,
            tokenizer=base.tokenizer,
            pixels=pixels,
            prompts=data.prompts,
            cache_latents=cached,
            train_text=False,
        )
        with torch.no_grad():
            loss = db.micro_step_loss(
                base.unet, inputs, sched, idx, 3, cpu_generator(0, 0, 0), dreambooth_cfg()
            )
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


@pytest.mark.parametrize("cached", [True, False])
def test_caption_dropout_trains_on_the_empty_prompt(base_dir, instances, cached):
    """Known answer: with caption_dropout 1 every item is conditioned on "" (the loss equals that
    of a set whose prompts are all empty); at 0.2 some items are, and the loss is that of a set
    with exactly those prompts emptied."""
    from diffusers import DDPMScheduler

    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    data = db.load_instance_set(instances)
    sched = DDPMScheduler.from_config(base.scheduler.config)
    idx = torch.tensor([0, 3, 5, 6])

    masks = []

    def loss(prompts, **extra):
        inputs = db.TrainingInputs(
            vae=base.vae,
            text_encoder=base.text_encoder,
            tokenizer=base.tokenizer,
            pixels=db.slices_to_pixels(data.slices, 32),
            prompts=prompts,
            cache_latents=cached,
            train_text=False,
        )
        embed = inputs.embeddings
        inputs.embeddings = lambda i, empty=None: masks.append(empty) or embed(i, empty)
        with torch.no_grad():
            return db.micro_step_loss(
                base.unet, inputs, sched, idx, 4, cpu_generator(0, 0, 0), dreambooth_cfg(**extra)
            ).item()

    plain, empty = loss(data.prompts), loss([""] * len(data.prompts))
    assert plain != pytest.approx(empty, rel=1e-4)  # the prompt matters to this base
    assert loss(data.prompts, caption_dropout=1.0) == pytest.approx(empty, rel=1e-5)
    assert masks[-1].all()
    assert loss(data.prompts, caption_dropout=0.0) == pytest.approx(plain, rel=1e-5)
    assert masks[-1] is None  # nothing drawn: runs without dropout are what they were
    some = loss(data.prompts, caption_dropout=0.2)
    dropped = set(idx[masks[-1]].tolist())
    assert 0 < len(dropped) < len(idx)  # this seed drops some items, not all
    mixed = ["" if i in dropped else p for i, p in enumerate(data.prompts)]
    assert some == pytest.approx(loss(mixed), rel=1e-5)
    assert some != pytest.approx(plain, abs=1e-6) and some != pytest.approx(empty, abs=1e-6)


def test_weight_average_warms_up_and_round_trips():
    from brainmr.diffusion.memory import WeightAverage

    param = torch.nn.Parameter(torch.zeros(3))
    average = WeightAverage([param], decay=0.5)
    with torch.no_grad():
        param.fill_(1.0)
    average.update()  # first update (n = 0): decay 1/10
    torch.testing.assert_close(average.shadow[0], torch.full((3,), 0.9))
    for _ in range(20):
        average.update()
    assert average.current_decay() == 0.5  # (1 + n) / (10 + n) passed the cap at n = 8
    with torch.no_grad():
        param.fill_(3.0)
    average.update()  # shadow ~1 -> halfway to 3
    torch.testing.assert_close(average.shadow[0], torch.full((3,), 2.0), atol=1e-3, rtol=0)
    restored = WeightAverage([param], decay=0.5)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 22 and torch.equal(restored.shadow[0], average.shadow[0])
    restored.copy_to_params()
    assert torch.equal(param.detach(), average.shadow[0])


def test_weight_average_is_saved_and_survives_a_resume(tmp_path, base_dir, instances, monkeypatch):
    """The pipeline holds the moving average (a decay of ~0 gives the last weights, 0.9 others),
    and a run killed after a checkpoint resumes its average too: same weights as unkilled."""
    kw = dict(base_model=str(base_dir), instances=instances, threads=2)

    def unet_of(folder):
        return torch.cat(
            [
                p.flatten()
                for p in StableDiffusionPipeline.from_pretrained(str(folder)).unet.parameters()
            ]
        )

    runs = {"plain": 0.0, "tiny": 1e-9, "ema": 0.9}
    for name, decay in runs.items():
        cfg = dreambooth_cfg(max_train_steps=4, ema_decay=decay)
        train(pipeline_dir=tmp_path / name, work_dir=tmp_path / f"work_{name}", cfg=cfg, **kw)
    plain, tiny, ema = (unet_of(tmp_path / name) for name in runs)
    torch.testing.assert_close(tiny, plain, atol=1e-6, rtol=0)
    assert (ema - plain).abs().max() > 1e-4

    save = ckpt.save_checkpoint

    def save_then_die(accelerator, folder, step, *args):
        save(accelerator, folder, step, *args)
        raise KeyboardInterrupt(f"killed after checkpoint {step}")

    cfg = dreambooth_cfg(max_train_steps=4, ema_decay=0.9)
    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", cfg=cfg, **kw)
    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", cfg=cfg, **kw)
    torch.testing.assert_close(unet_of(tmp_path / "b"), ema, atol=1e-5, rtol=0)


def test_v_prediction_target():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(prediction_type="v_prediction")
    x, n, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    assert torch.allclose(noise_target(sched, x, n, t), sched.get_velocity(x, n, t))
    assert noise_target(DDPMScheduler(), x, n, t) is n


@pytest.mark.parametrize("name", ["dpmsolver++", "ddim", "pndm", "ddpm"])
def test_scheduler_names(base_dir, name):
    sched = make_scheduler(
        name, StableDiffusionPipeline.from_pretrained(str(base_dir)).scheduler.config
    )
    assert type(sched).__name__.lower().startswith(name.rstrip("+")[:4])
    assert name != "dpmsolver++" or sched.config.algorithm_type == "dpmsolver++"


def test_generation_is_reproducible_and_independent_of_batching(tmp_path, base_dir):
    cfg = stage_config(
        GenerateConfig,
        "generate",
        n_images=3,
        batch_size=3,
        num_inference_steps=3,
        guidance_scale=2.0,
    )
    kw = dict(model_dir=base_dir, prompt=AD_PROMPT, condition="brain", group="AD", image_size=160)
    generate_images(out_dir=tmp_path / "batched", cfg=cfg, **kw)
    generate_images(out_dir=tmp_path / "again", cfg=cfg, **kw)
    generate_images(
        out_dir=tmp_path / "single",
        cfg=stage_config(
            GenerateConfig,
            "generate",
            n_images=3,
            batch_size=1,
            num_inference_steps=3,
            guidance_scale=2.0,
        ),
        **kw,
    )
    manifest = pd.read_csv(tmp_path / "batched" / "manifest.tsv", sep="\t")
    assert list(manifest.columns) == ["file", "seed", "prompt", "condition", "group"]
    assert manifest.file.tolist() == ["brain_AD_000.png", "brain_AD_001.png", "brain_AD_002.png"]
    assert manifest.prompt.tolist() == [AD_PROMPT] * 3 and manifest.seed.tolist() == [0, 1, 2]
    batched = [io.load_png_gray(tmp_path / "batched" / f) for f in manifest.file]
    assert batched[0].shape == (160, 160)
    assert not np.allclose(batched[0], batched[1])  # different seeds, different images
    for f, image in zip(manifest.file, batched, strict=True):
        assert np.array_equal(io.load_png_gray(tmp_path / "again" / f), image)
        assert np.abs(io.load_png_gray(tmp_path / "single" / f) - image).max() <= 1.5 / 255
    alone = regenerate_image(model_dir=base_dir, prompt=AD_PROMPT, index=2, cfg=cfg)
    assert np.abs(alone - batched[2]).max() <= 1.5 / 255


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
    with pytest.raises(ValueError, match="vae_crop 15 must be a multiple"):
        build_models(stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, vae_crop=15), None)


def test_pretrain_corpus_and_demo_base(tmp_path, base_dir):
    cfg = stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, vae_crop=16, vae_loss="l1")
    write_pretrain_corpus(tmp_path / "corpus.npz", cfg=cfg)
    images, captions = load_pretrain_corpus(tmp_path / "corpus.npz")
    assert images.shape == (16, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert any("a MRI brain" in c for c in captions)
    brains = images[[("brain" in c) for c in captions]]
    assert brains.mean() > 0.1 and brains[:, 0, :].mean() < 0.05  # brain in the middle, dark edge
    pretrain_demo_base(
        base_dir=base_dir,
        corpus_npz=tmp_path / "corpus.npz",
        out_dir=tmp_path / "pre",
        cfg=cfg,
        threads=2,
    )
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "pre"))
    assert pipe.vae.config.scaling_factor != pytest.approx(0.18215)
    assert (tmp_path / "pre" / "pretrain_loss.tsv").is_file()


def test_prior_preservation_text_encoder_and_accumulation(tmp_path, base_dir, instances):
    cfg = dreambooth_cfg(
        max_train_steps=2,
        with_prior_preservation=True,
        num_class_images=3,
        train_text_encoder=True,
        gradient_checkpointing=True,
        gradient_accumulation_steps=2,
    )
    kw = dict(base_model=str(base_dir), instances=instances, cfg=cfg, work_dir=tmp_path / "work")
    train(pipeline_dir=tmp_path / "model", **kw)
    classes = sorted((tmp_path / "work" / "class_images").glob("class_*.png"))
    assert len(classes) == 3 and io.load_png_gray(classes[0]).shape == (32, 32)
    idx = db.step_batch(0, 1, 8, 3, cfg)
    assert len(idx) == 4 and all(i < 8 for i in idx[:2]) and all(8 <= i < 11 for i in idx[2:])
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    pairs = zip(base.text_encoder.parameters(), tuned.text_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # the text encoder was trained too
    assert pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t").step.tolist() == [1, 2]


def test_text_encoder_learns_at_its_own_rate(tmp_path, base_dir, instances):
    """text_encoder_learning_rate drives the text encoder alone: with the UNet's rate at 0 the
    UNet stays the base's and the text encoder moves; unset, the text encoder takes the UNet's."""
    cfg = dreambooth_cfg(
        max_train_steps=2,
        train_text_encoder=True,
        learning_rate=0.0,
        text_encoder_learning_rate=1e-3,
    )
    train(pipeline_dir=tmp_path / "model", base_model=str(base_dir), instances=instances, cfg=cfg,
          work_dir=tmp_path / "work")  # fmt: skip
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    unet = zip(base.unet.parameters(), tuned.unet.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in unet)
    text = zip(base.text_encoder.parameters(), tuned.text_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in text)
    trained = [base.unet, base.text_encoder]
    base.text_encoder.requires_grad_(True)
    groups = db.parameter_groups(trained, dreambooth_cfg(learning_rate=2e-4))
    assert [g["lr"] for g in groups] == [2e-4, 2e-4]
    assert len(groups[1]["params"]) == len(list(base.text_encoder.parameters()))
    assert len(db.parameter_groups(trained[:1], cfg)) == 1  # a frozen text encoder: no group


def test_sigkilled_training_process_resumes(tmp_path, base_dir, instances, caplog):
    """A training process killed with SIGKILL (as SLURM or a user would) resumes from its last
    checkpoint on rerun instead of starting over."""
    instances.to_csv(tmp_path / "instances.tsv", sep="\t", index=False)
    settings = dict(max_train_steps=60, train_batch_size=2)
    run = dict(RUN_TEST, checkpointing_steps=3)
    script = tmp_path / "train.py"
    script.write_text(
        "import pandas as pd, torch\n"
        "from brainmr.config import stage_config\n"
        "from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig\n"
        "from brainmr.diffusion.config import GenerateConfig\n"
        "from brainmr.diffusion.dreambooth import train_dreambooth\n"
        "torch.set_num_threads(1)\n"
        f"cfg = stage_config(DreamBoothConfig, 'dreambooth', **{dreambooth_kwargs(settings)!r})\n"
        f"run = stage_config(DreamBoothRunConfig, 'dreambooth', **{run!r})\n"
        f"gen = stage_config(GenerateConfig, 'generate', **{GEN_TEST!r})\n"
        f"train_dreambooth(base_model={str(base_dir)!r},\n"
        f"    instances=pd.read_csv({str(tmp_path / 'instances.tsv')!r}, sep='\\t'),\n"
        f"    pipeline_dir={str(tmp_path / 'model')!r}, work_dir={str(tmp_path / 'work')!r},\n"
        "    cfg=cfg, run=run, gen_cfg=gen)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "work" / "checkpoints"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(checkpoints.glob("step-*")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = [int(p.name.split("-")[1]) for p in checkpoints.glob("step-*")]
    assert saved, "no checkpoint was written before the kill"
    assert not (tmp_path / "model").exists()  # the pipeline is only written at the end

    caplog.set_level(logging.INFO, logger="brainmr.diffusion")
    train(
        base_model=str(base_dir),
        instances=instances,
        pipeline_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        cfg=dreambooth_cfg(**settings),
        run=run_cfg(**run),
    )
    resumed = int(re.search(r"resuming from .*\(step (\d+)\)", caplog.text).group(1))
    assert resumed >= min(saved) >= 3
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert loss.step.tolist() == list(range(1, 61))
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))


def _differs(a, b) -> set[str]:
    """Names of the parameters that differ between two models of one architecture."""
    pb = dict(b.named_parameters())
    return {n for n, p in a.named_parameters() if not torch.equal(p, pb[n])}


def test_lora_trains_adapters_merged_into_a_plain_pipeline(tmp_path, base_dir, instances):
    cfg = dreambooth_cfg(
        max_train_steps=3,
        learning_rate=5e-2,
        lora_rank=4,
        train_text_encoder=True,
        lora_text_encoder=True,
    )
    run = run_cfg(validation_steps=2)
    kw = dict(base_model=str(base_dir), instances=instances, cfg=cfg, run=run)
    train(pipeline_dir=tmp_path / "model", work_dir=tmp_path / "work", **kw)
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
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


def test_8bit_adam_without_a_gpu_is_a_clear_error(tmp_path, base_dir, instances):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: 8-bit AdamW can run")
    with pytest.raises(RuntimeError, match=r"use_8bit_adam.*CUDA"):
        train(
            base_model=str(base_dir),
            instances=instances,
            pipeline_dir=tmp_path / "model",
            work_dir=tmp_path / "work",
            cfg=dreambooth_cfg(use_8bit_adam=True),
        )
    assert not (tmp_path / "model").exists()


def test_min_snr_weights_and_noise_offset(base_dir, instances):
    from diffusers import DDPMScheduler

    from brainmr.diffusion.memory import min_snr_weights, offset_noise

    sched = DDPMScheduler.from_config(
        StableDiffusionPipeline.from_pretrained(str(base_dir)).scheduler.config
    )
    t = torch.tensor([0, 100, 500, 999])
    alpha = sched.alphas_cumprod[t]
    snr = alpha / (1 - alpha)  # known answer: SNR(t) = abar / (1 - abar)
    expected = torch.minimum(snr, torch.tensor(5.0)) / snr
    torch.testing.assert_close(min_snr_weights(sched, t, 5.0), expected.float())
    assert expected[0] < 1 and expected[-1] == 1  # low-noise steps are down-weighted
    noise = offset_noise((64, 4, 8, 8), cpu_generator(1), 0.5)
    per_channel_means = noise.mean(dim=(2, 3))
    assert per_channel_means.std() > 0.3  # a shared offset per (image, channel)
    assert torch.equal(
        offset_noise((2, 4, 8, 8), cpu_generator(1), 0.0),
        torch.randn((2, 4, 8, 8), generator=cpu_generator(1)),
    )
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    data = db.load_instance_set(instances)
    inputs = db.TrainingInputs(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        pixels=db.slices_to_pixels(data.slices, 32),
        prompts=data.prompts,
        cache_latents=True,
        train_text=False,
    )
    idx = torch.tensor([0, 3, 5])
    losses = {}
    for name, extra in {
        "plain": {},
        "snr": {"snr_gamma": 0.05},  # most timesteps have SNR > 0.05: weights < 1
        "offset": {"noise_offset": 0.1},
    }.items():
        with torch.no_grad():
            losses[name] = db.micro_step_loss(
                base.unet, inputs, sched, idx, 3, cpu_generator(0, 0, 0), dreambooth_cfg(**extra)
            ).item()
    assert np.isfinite(list(losses.values())).all()
    assert losses["snr"] != pytest.approx(losses["plain"])
    assert losses["offset"] != pytest.approx(losses["plain"])


def test_bf16_autocast_on_cpu_end_to_end(tmp_path, base_dir, instances, monkeypatch):
    """Half precision through Accelerate on a CPU: train, save, generate (the branches a GPU run
    takes, run in CI)."""
    from accelerate import Accelerator

    modes = []
    original = Accelerator.__init__

    def record(self, *args, **kwargs):
        modes.append(kwargs.get("mixed_precision"))
        original(self, *args, **kwargs)

    from accelerate.state import AcceleratorState

    monkeypatch.setattr(Accelerator, "__init__", record)
    cfg = dreambooth_cfg(max_train_steps=2, mixed_precision="bf16", train_text_encoder=True)
    # Accelerate keeps one state per process (a workflow job is one process): reset it here
    AcceleratorState._reset_state(True)
    try:
        train(
            base_model=str(base_dir),
            instances=instances,
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
    from brainmr.diffusion.generate import load_pipeline

    assert (
        load_pipeline(tmp_path / "model", scheduler="ddim", mixed_precision="bf16").dtype
        == torch.bfloat16
    )
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


def test_oversampled_batches_hold_each_class_equally():
    """class_balance: oversample draws AD and CN 1:1 per batch whatever the class sizes (3 AD
    vs 9 CN here), as a pure function of seed and step (a resumed run draws the same)."""
    groups = ["AD"] * 3 + ["CN"] * 9
    cfg = dreambooth_cfg(train_batch_size=4, class_balance="oversample")
    plain = dreambooth_cfg(train_batch_size=4)
    drawn, drawn_plain = [], []
    for step in range(30):
        idx = db.step_batch(step, 0, len(groups), 0, cfg, groups=groups)
        assert [groups[i] for i in idx].count("AD") == 2  # 2 of 4 in every batch
        assert np.array_equal(idx, db.step_batch(step, 0, len(groups), 0, cfg, groups=groups))
        drawn += [groups[i] for i in idx]
        drawn_plain += [groups[i] for i in db.step_batch(step, 0, len(groups), 0, plain, groups)]
    assert drawn.count("AD") == 60
    assert drawn_plain.count("AD") == 30  # the paper's setup: AD in proportion, 3 of 12
    # every AD slice is seen, each as often (3 AD slices, 60 draws: 20 each)
    ad_draws = [i for step in range(30) for i in db.step_batch(step, 0, 12, 0, cfg, groups)]
    counts = np.bincount([i for i in ad_draws if i < 3], minlength=3)
    assert counts.tolist() == [20, 20, 20]


def test_each_class_is_generated_with_its_own_model_and_settings(tmp_path, base_dir):
    """per_class_models and per-class guidance/negative prompt: one call writes each class's set
    from its own pipeline with its own settings, the same images as a call per class."""
    common = dict(n_images=2, batch_size=2, num_inference_steps=3)
    cfg_ad = stage_config(GenerateConfig, "generate", guidance_scale=2.0, **common)
    cfg_cn = stage_config(
        GenerateConfig, "generate", guidance_scale=4.0, negative_prompt=AD_PROMPT, **common
    )
    other = tmp_path / "other_model"
    shutil.copytree(base_dir, other)
    generate_image_sets(
        model_dirs={"AD": base_dir, "CN": other},
        prompts={"AD": AD_PROMPT, "CN": CN_PROMPT},
        condition="separate",
        out_dirs={"AD": tmp_path / "AD", "CN": tmp_path / "CN"},
        cfgs={"AD": cfg_ad, "CN": cfg_cn},
    )
    for group, model, cfg, prompt in (
        ("AD", base_dir, cfg_ad, AD_PROMPT),
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
            model_dirs={"AD": base_dir},
            prompts={"AD": AD_PROMPT},
            condition="x",
            out_dirs={"AD": tmp_path / "x"},
            cfgs={},
        )
