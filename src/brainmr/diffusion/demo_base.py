"""The demo's tiny Stable-Diffusion-architecture base: built from configs (no download), then
pretrained on a synthetic corpus of MNI152 coronal slices captioned "a MRI brain" (plus a few
non-brain images), so that the words mean something to it before DreamBooth, as they do to SD.
The corpus is separate from the cohort: the base never sees a subject's slice."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage

from brainmr import SLICE_SIZE, io
from brainmr.diffusion.common import (
    resize_image,
    set_cpu_threads,
    slices_to_pixels,
    tokenize,
)
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.logs import progress

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
# The tokenizer's words: the paper's prompts, the corpus captions, a few common words; every other
# word still tokenizes (letter by letter) since every byte is in the vocabulary.
VOCABULARY_WORDS = (
    "ad cn a an mri brain adni coronal slice t1 weighted white circle gray grey square noise "
    "the of and with in on photo image picture scan axial sagittal head black background healthy "
    "normal alzheimer alzheimer's disease dementia patient subject high quality"
).split()
MAX_PROMPT_TOKENS = 77  # CLIP's context length
KL_WEIGHT = 1e-7  # small: a nearly deterministic autoencoder, as SD's VAE
CAPTION_DROPOUT = 0.1  # empty captions teach the unconditional model classifier-free guidance uses
WARMUP_STEPS = 50


# ----------------------------------------------------------------------------- tokenizer + models
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def word_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges until every word is one token: the most frequent adjacent pair first, ties
    broken by the pair's text. The same words give the same merges in every process (the
    tokenizers library's trainer breaks ties in hash order, which changes from one process to
    the next: the demo base's token ids, hence its weights, differed between runs)."""
    words = [list(w[:-1]) + [w[-1] + "</w>"] for w in words]
    merges = []
    while pairs := Counter(p for w in words for p in zip(w, w[1:], strict=False)):
        pair = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(pair)
        words = [_merge_pair(w, pair) for w in words]
    return merges


def _merge_pair(word: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def write_tokenizer_files(folder: Path) -> None:
    """A small word-level BPE vocabulary (each listed word one token, split as CLIP's
    pre-tokeniser splits text) written as vocab.json + merges.txt into ``folder``: the special
    tokens, every byte-level character alone and word-final (so that no character of any prompt
    maps to the unknown token), then the merges' products."""
    from tokenizers import pre_tokenizers
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    split = CLIPTokenizer().backend_tokenizer.pre_tokenizer  # CLIP's, empty vocabulary
    words = [w for w, _ in split.pre_tokenize_str(" ".join(VOCABULARY_WORDS).lower())]
    merges = word_merges(list(dict.fromkeys(words)))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [*SPECIAL_TOKENS, *alphabet, *(c + "</w>" for c in alphabet)]
    tokens += [a + b for a, b in merges]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_tokenizer(folder: Path):
    """A CLIPTokenizer on our vocabulary. transformers 5.x: ``CLIPTokenizer(vocab_file=...)``
    silently builds a 2-token tokenizer, so load from a folder."""
    from transformers import CLIPTokenizer

    write_tokenizer_files(folder)
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=MAX_PROMPT_TOKENS)


def _norm_groups(channels: list[int]) -> int:
    return math.gcd(8, *channels)


def build_models(cfg: DemoBaseConfig, tokenizer):
    """Untrained VAE, UNet and CLIP text model of SD's architecture at the config's sizes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    n_vae, n_unet = len(cfg.vae_channels), len(cfg.unet_channels)
    vae_factor = 2 ** (n_vae - 1)
    multiple = vae_factor * 2 ** (n_unet - 1)
    if cfg.resolution % multiple:
        raise ValueError(
            f"demo_base.resolution {cfg.resolution} must be a multiple of {multiple} "
            f"for VAE {cfg.vae_channels} and UNet {cfg.unet_channels}"
        )
    if cfg.vae_crop is not None and cfg.vae_crop % vae_factor:
        raise ValueError(
            f"demo_base.vae_crop {cfg.vae_crop} must be a multiple of the VAE's downsampling "
            f"{vae_factor} (vae_channels {cfg.vae_channels})"
        )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae,
        block_out_channels=tuple(cfg.vae_channels),
        latent_channels=cfg.latent_channels,
        layers_per_block=1,
        norm_num_groups=_norm_groups(cfg.vae_channels),
        sample_size=cfg.resolution,
    )
    # Attention off the highest-resolution level: there it costs most of the UNet's time (CPU).
    unet = UNet2DConditionModel(
        sample_size=cfg.resolution // vae_factor,
        in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_unet - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n_unet - 1) + ("UpBlock2D",),
        layers_per_block=1,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=tuple(max(1, c // 32) for c in cfg.unet_channels),  # = heads (SD 1.x)
        norm_num_groups=_norm_groups(cfg.unet_channels),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.text_hidden,
            intermediate_size=4 * cfg.text_hidden,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=max(1, cfg.text_hidden // 32),
            max_position_embeddings=MAX_PROMPT_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return vae, unet, text_encoder


def sd_training_scheduler():
    """SD 1.x's noise schedule (scaled-linear betas, 1000 steps, epsilon prediction)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="epsilon",
        steps_offset=1,
    )


def assemble_pipeline(*, vae, text_encoder, tokenizer, unet):
    """An SD pipeline from its parts, with SD's training scheduler and no safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_training_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_demo_base(out_dir: Path, *, cfg: DemoBaseConfig) -> None:
    """Write an untrained SD-architecture pipeline (``save_pretrained``) into ``out_dir``."""
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tokenizer")
    vae, unet, text_encoder = build_models(cfg, tokenizer)
    pipe = assemble_pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet)
    with io.atomic_dir(out_dir) as tmp:
        pipe.save_pretrained(tmp)
    log.info("untrained demo base written to %s", out_dir)


# ----------------------------------------------------------------------------- corpus
def mni_coronal_volume() -> np.ndarray:
    """nilearn's MNI152 2009 template (1 mm, skull-stripped), axes (x: left->right, y, z)."""
    from nilearn import datasets

    return datasets.load_mni152_template(resolution=1).get_fdata(dtype=np.float32)


def coronal_slice(volume: np.ndarray, y: int, size: int = SLICE_SIZE) -> np.ndarray:
    """Coronal plane at index ``y`` in the slice orientation (row 0 superior, column 0 the
    subject's right, radiological), centre-cropped or padded to size x size at 1 mm."""
    plane = volume[:, y, :].T[::-1, ::-1]  # (z, x) -> superior first, right first
    out = np.zeros((size, size), np.float32)
    rows, cols = plane.shape
    r0, c0 = (rows - size) // 2, (cols - size) // 2
    src = plane[max(r0, 0) : max(r0, 0) + size, max(c0, 0) : max(c0, 0) + size]
    out[max(-r0, 0) : max(-r0, 0) + src.shape[0], max(-c0, 0) : max(-c0, 0) + src.shape[1]] = src
    return out


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
    """(images (N, R, R) in [0, 1], captions): brain slices at random coronal positions around
    the centre, plus a few non-brain images."""
    rng = np.random.default_rng(seed)
    centre_y = volume.shape[1] // 2
    images, captions = [], []
    for _ in range(n_images):
        if rng.random() < NON_BRAIN_FRACTION:
            caption = str(rng.choice(OTHER_CAPTIONS))
            image = non_brain_image(caption, SLICE_SIZE, rng)
        else:
            caption = str(rng.choice(BRAIN_CAPTIONS))
            y = centre_y + int(rng.integers(-20, 21))
            image = deform_slice(coronal_slice(volume, y), rng)
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


# ----------------------------------------------------------------------------- pretraining
def _batches(n_items: int, batch_size: int, steps: int, rng: np.random.Generator):
    """Indices of ``steps`` batches, walking through shuffled epochs."""
    order: list[int] = []
    for _ in range(steps):
        while len(order) < batch_size:
            order.extend(rng.permutation(n_items).tolist())
        yield torch.tensor(order[:batch_size])
        order = order[batch_size:]


def _optimizer(params, lr: float, total_steps: int):
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    schedule = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=min(WARMUP_STEPS, total_steps // 10),
        num_training_steps=total_steps,
    )
    return optimizer, schedule


def random_crop(batch: torch.Tensor, size: int | None, rng: np.random.Generator) -> torch.Tensor:
    """One random size x size crop position for the whole batch; the batch itself if ``size`` is
    None or not smaller than the images."""
    height, width = batch.shape[-2:]
    if size is None or size >= min(height, width):
        return batch
    top, left = (int(rng.integers(0, extent - size + 1)) for extent in (height, width))
    return batch[..., top : top + size, left : left + size]


def train_vae(vae, pixels: torch.Tensor, cfg: DemoBaseConfig, rng) -> list[float]:
    """Reconstruction (L1 or MSE) on random crops or whole images, plus a small KL term; returns
    the loss per step."""
    vae.train()
    optimizer, schedule = _optimizer(vae.parameters(), cfg.learning_rate, cfg.vae_steps)
    reconstruction = {"l1": F.l1_loss, "mse": F.mse_loss}[cfg.vae_loss]
    losses = []
    batches = _batches(len(pixels), cfg.batch_size, cfg.vae_steps, rng)
    bar = progress(batches, total=cfg.vae_steps, desc="demo base: VAE", unit="step")
    for idx in bar:
        batch = random_crop(pixels[idx], cfg.vae_crop, rng).to(vae.device)
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample()).sample
        loss = reconstruction(recon, batch) + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    vae.eval()
    return losses


@torch.no_grad()
def fit_scaling_factor(vae, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Set the VAE's scaling factor so that scaled latents have unit variance (SD's 0.18215 was
    chosen the same way); returns the corpus' posterior means and stds."""
    means, stds = [], []
    for chunk in pixels.split(64):
        dist = vae.encode(chunk.to(vae.device)).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    mean, std = torch.cat(means), torch.cat(stds)
    vae.register_to_config(scaling_factor=float(1.0 / mean.std()))
    return mean, std


def train_unet_and_text(
    unet, text_encoder, tokenizer, scheduler, latents, captions, cfg: DemoBaseConfig, rng
) -> list[float]:
    """Noise-prediction loss on the corpus (latents already scaled), training the UNet and the
    text encoder together."""
    mean, std = latents
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer, schedule = _optimizer(params, cfg.learning_rate, cfg.unet_steps)
    device = unet.device
    ids = tokenize(tokenizer, captions)
    empty = tokenize(tokenizer, [""])[0]
    unet.train()
    text_encoder.train()
    losses = []
    batches = _batches(len(mean), cfg.batch_size, cfg.unet_steps, rng)
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = progress(batches, total=cfg.unet_steps, desc="demo base: UNet + text", unit="step")
    for idx in bar:
        # noise drawn on the CPU generator, so a GPU run draws what a CPU run does
        x0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)
        batch_ids = ids[idx].clone()
        batch_ids[torch.rand(len(idx), generator=gen) < CAPTION_DROPOUT] = empty
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        x0, noise, t, batch_ids = (v.to(device) for v in (x0, noise, t, batch_ids))
        pred = unet(scheduler.add_noise(x0, noise, t), t, text_encoder(batch_ids)[0]).sample
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    unet.eval()
    text_encoder.eval()
    return losses


def pretrain_demo_base(
    *, base_dir: Path, corpus_npz: Path, out_dir: Path, cfg: DemoBaseConfig, threads: int = 1
) -> None:
    """Train the base's VAE, then its UNet and text encoder, on the corpus; save the pipeline
    (``save_pretrained``) with ``pretrain_loss.tsv`` into ``out_dir``."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    set_cpu_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(base_dir), safety_checker=None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipe.to(device)
    log.info("pretraining the demo base on %s", device)
    images, captions = load_pretrain_corpus(corpus_npz)
    pixels = slices_to_pixels(images, cfg.resolution)
    started = time.perf_counter()
    vae_losses = train_vae(pipe.vae, pixels, cfg, rng)
    log.info("VAE: %d steps in %.0f s", cfg.vae_steps, time.perf_counter() - started)
    mean, std = (v.cpu() for v in fit_scaling_factor(pipe.vae, pixels))
    scale = pipe.vae.config.scaling_factor
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    started = time.perf_counter()
    unet_losses = train_unet_and_text(
        pipe.unet,
        pipe.text_encoder,
        pipe.tokenizer,
        scheduler,
        (mean * scale, std * scale),
        captions,
        cfg,
        rng,
    )
    log.info(
        "UNet + text encoder: %d steps in %.0f s", cfg.unet_steps, time.perf_counter() - started
    )
    with io.atomic_dir(out_dir) as tmp:
        pipe.to("cpu").save_pretrained(tmp)
        table = pd.DataFrame(
            {
                "phase": ["vae"] * len(vae_losses) + ["unet"] * len(unet_losses),
                "step": list(range(1, len(vae_losses) + 1)) + list(range(1, len(unet_losses) + 1)),
                "loss": vae_losses + unet_losses,
            }
        )
        io.write_tsv(Path(tmp) / "pretrain_loss.tsv", table)
    log.info("pretrained demo base written to %s", out_dir)
