"""Pretraining of the demo base on its corpus: the VAE first (reconstruction on random crops
plus a small KL term, then the latent scaling factor fitted as SD's was), then the UNet and the
text encoder together on noise prediction, with caption dropout for classifier-free guidance."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from brainmr import io
from brainmr.device import best_device
from brainmr.diffusion.common import slices_to_pixels, tokenize
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_corpus import load_pretrain_corpus
from brainmr.logs import progress
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

KL_WEIGHT = 1e-7  # small: a nearly deterministic autoencoder, as SD's VAE
CAPTION_DROPOUT = 0.1  # empty captions teach the unconditional model classifier-free guidance uses
WARMUP_STEPS = 50


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

    limit_threads(threads, torch=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(base_dir), safety_checker=None)
    device = best_device()
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
