"""brainmr.diffusion on tiny in-process models (CPU, seconds): the tokenizer, the pretraining
corpus, DreamBooth (artifact, kill and resume, caching, prompts) and generation."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion import (
    DemoBaseConfig,
    DreamBoothConfig,
    GenerateConfig,
    build_demo_base,
    generate_images,
    pretrain_demo_base,
    regenerate_image,
    train_dreambooth,
    write_pretrain_corpus,
)
from brainmr.diffusion import dreambooth as db
from brainmr.diffusion.common import cpu_generator, noise_target, tokenize
from brainmr.diffusion.demo_base import build_tokenizer, load_pretrain_corpus
from brainmr.diffusion.generate import make_scheduler

AD_PROMPT = "AD, a MRI brain, ADNI2"
CN_PROMPT = "CN, a MRI brain, ADNI2"
TINY_BASE = dict(
    resolution=32,
    vae_channels=[8, 16],
    latent_channels=4,
    unet_channels=[16, 32],
    text_hidden=32,
    text_layers=1,
    corpus_size=16,
    vae_steps=2,
    unet_steps=2,
    batch_size=4,
)


def dreambooth_kwargs(overrides: dict) -> dict:
    return DREAMBOOTH_TEST | overrides


def dreambooth_cfg(**overrides) -> DreamBoothConfig:
    return stage_config(DreamBoothConfig, "dreambooth", **dreambooth_kwargs(overrides))


DREAMBOOTH_TEST = dict(
    resolution=32,
    max_train_steps=3,
    train_batch_size=2,
    learning_rate=1e-3,
    checkpointing_steps=2,
)


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
    train_dreambooth(
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
    caplog.set_level(logging.DEBUG, logger="brainmr.diffusion.dreambooth")
    train_dreambooth(pipeline_dir=tmp_path / "a", work_dir=tmp_path / "work_a", **kw)
    reference = _batches_logged(caplog.records)
    expected = pd.read_csv(tmp_path / "work_a" / "loss.tsv", sep="\t")

    save = db._save_checkpoint

    def save_then_die(accelerator, folder, step, *args):
        save(accelerator, folder, step, *args)
        if step == 4:
            raise KeyboardInterrupt("killed after checkpoint 4")

    monkeypatch.setattr(db, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_dreambooth(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", **kw)
    assert not (tmp_path / "b").exists()
    assert sorted(p.name for p in (tmp_path / "work_b" / "checkpoints").iterdir()) == [
        "step-2",
        "step-4",
    ]

    monkeypatch.setattr(db, "_save_checkpoint", save)
    caplog.clear()
    train_dreambooth(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", **kw)
    assert "step 4" in caplog.text and "resuming" in caplog.text
    resumed = _batches_logged(caplog.records)
    assert sorted(resumed) == [5, 6]  # steps 1-4 were not redone
    assert all(resumed[s] == reference[s] for s in resumed)
    got = pd.read_csv(tmp_path / "work_b" / "loss.tsv", sep="\t")
    assert got.step.tolist() == list(range(1, 7))
    np.testing.assert_allclose(got.loss, expected.loss, rtol=1e-4)  # same batches, noise, weights
    assert sorted(p.name for p in (tmp_path / "work_b" / "checkpoints").iterdir()) == [
        "step-4",
        "step-6",
    ]
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "b"))


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


def test_pretrain_corpus_and_demo_base(tmp_path, base_dir):
    cfg = stage_config(DemoBaseConfig, "demo_base", **TINY_BASE)
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
    train_dreambooth(pipeline_dir=tmp_path / "model", **kw)
    classes = sorted((tmp_path / "work" / "class_images").glob("class_*.png"))
    assert len(classes) == 3 and io.load_png_gray(classes[0]).shape == (32, 32)
    idx = db.step_batch(0, 1, 8, 3, cfg)
    assert len(idx) == 4 and all(i < 8 for i in idx[:2]) and all(8 <= i < 11 for i in idx[2:])
    base = StableDiffusionPipeline.from_pretrained(str(base_dir))
    tuned = StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
    pairs = zip(base.text_encoder.parameters(), tuned.text_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # the text encoder was trained too
    assert pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t").step.tolist() == [1, 2]


def test_sigkilled_training_process_resumes(tmp_path, base_dir, instances, caplog):
    """A training process killed with SIGKILL (as SLURM or a user would) resumes from its last
    checkpoint on rerun instead of starting over."""
    instances.to_csv(tmp_path / "instances.tsv", sep="\t", index=False)
    settings = dict(max_train_steps=60, train_batch_size=2, checkpointing_steps=3)
    script = tmp_path / "train.py"
    script.write_text(
        "import pandas as pd, torch\n"
        "from brainmr.config import stage_config\n"
        "from brainmr.diffusion import DreamBoothConfig, train_dreambooth\n"
        "torch.set_num_threads(1)\n"
        f"cfg = stage_config(DreamBoothConfig, 'dreambooth', **{dreambooth_kwargs(settings)!r})\n"
        f"train_dreambooth(base_model={str(base_dir)!r},\n"
        f"    instances=pd.read_csv({str(tmp_path / 'instances.tsv')!r}, sep='\\t'),\n"
        f"    pipeline_dir={str(tmp_path / 'model')!r}, work_dir={str(tmp_path / 'work')!r},\n"
        "    cfg=cfg)\n"
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

    caplog.set_level(logging.INFO, logger="brainmr.diffusion.dreambooth")
    train_dreambooth(
        base_model=str(base_dir),
        instances=instances,
        pipeline_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        cfg=dreambooth_cfg(**settings),
    )
    resumed = int(re.search(r"resuming from .*\(step (\d+)\)", caplog.text).group(1))
    assert resumed >= min(saved) >= 3
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert loss.step.tolist() == list(range(1, 61))
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
