"""What a loss-based membership-inference attack reads: each slice's denoising loss under a
diffusion model. The loss of a slice the model was trained on (a member) tends to be lower than
that of a slice it never saw; with the model's own prompts, timesteps and noise fixed for every
slice, the difference is the model's and not the draw's.

The latent is the VAE posterior mean (no sampling noise of its own), and the noise of each
(timestep, draw) is one tensor shared by every slice (seeded), so that two slices differ only in
themselves and their prompts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainmr import io
from brainmr.diffusion.common import (
    cpu_generator,
    encode_prompts,
    noise_target,
    scale_latents,
    slices_to_pixels,
)
from brainmr.diffusion.config import MembershipConfig
from brainmr.io import as_bool
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)


@torch.no_grad()
def denoising_losses(
    pipe, slices: np.ndarray, prompts: list[str], cfg: MembershipConfig, resolution: int
) -> np.ndarray:
    """Per slice ((N, H, W) in [0, 1], each with its prompt): the noise-prediction MSE averaged
    over ``cfg.timesteps`` x ``cfg.noise_draws``, the same noise for every slice."""
    from diffusers import DDPMScheduler

    if len(slices) != len(prompts):
        raise ValueError(f"{len(slices)} slices but {len(prompts)} prompts")
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the training noise schedule
    steps = scheduler.config.num_train_timesteps
    bad = [t for t in cfg.timesteps if not 0 <= t < steps]
    if bad:
        raise ValueError(f"privacy.timesteps {bad} outside the model's 0..{steps - 1}")
    device, dtype = pipe.unet.device, pipe.unet.dtype
    losses = np.zeros(len(slices))
    for start in range(0, len(slices), cfg.batch_size):
        part = slice(start, start + cfg.batch_size)
        pixels = slices_to_pixels(slices[part], resolution).to(device, pipe.vae.dtype)
        latents = scale_latents(pipe.vae.encode(pixels).latent_dist.mean, pipe.vae).float()
        embeddings = encode_prompts(pipe.text_encoder, pipe.tokenizer, prompts[part]).to(dtype)
        generator = cpu_generator(cfg.seed)  # each batch draws the same noise: the same per slice
        total = torch.zeros(len(latents))
        for t in cfg.timesteps:
            for _ in range(cfg.noise_draws):
                noise = torch.randn(latents.shape[1:], generator=generator).expand_as(latents)
                noise = noise.to(device)
                timesteps = torch.full((len(latents),), t, dtype=torch.long, device=device)
                noisy = scheduler.add_noise(latents, noise, timesteps)
                pred = pipe.unet(noisy.to(dtype), timesteps, embeddings).sample.float()
                target = noise_target(scheduler, latents, noise, timesteps).float()
                total += ((pred - target) ** 2).mean(dim=(1, 2, 3)).cpu()
        losses[part] = (total / (len(cfg.timesteps) * cfg.noise_draws)).numpy()
    return losses


def membership_table(
    pipe, candidates: pd.DataFrame, cfg: MembershipConfig, resolution: int
) -> pd.DataFrame:
    """``candidates`` (subject, group, path, prompt, member) with each slice's loss."""
    slices = np.stack([io.load_npy(p) for p in candidates["path"]])
    losses = denoising_losses(pipe, slices, candidates["prompt"].tolist(), cfg, resolution)
    return candidates.assign(loss=losses)


def measure_membership(
    *,
    model_dir: Path,
    candidates: pd.DataFrame,
    cfg: MembershipConfig,
    resolution: int,
    mixed_precision: str = "no",
    threads: int = 1,
) -> pd.DataFrame:
    """Load a pipeline (a DreamBooth model or the base): every candidate slice's denoising
    loss (members: its train slices; non-members: held-out slices of its classes)."""
    from brainmr.diffusion.generate import load_pipeline

    limit_threads(threads, torch=True)
    member = as_bool(candidates["member"], "member").to_numpy()
    if member.all() or not member.any():
        raise ValueError(f"{model_dir}: membership needs members and non-members, got one kind")
    pipe = load_pipeline(Path(model_dir), scheduler="ddpm", mixed_precision=mixed_precision)
    table = membership_table(pipe, candidates, cfg, resolution)
    log.info(
        "%s: mean loss %.4f on %d members, %.4f on %d non-members",
        model_dir,
        table.loc[member, "loss"].mean(),
        int(member.sum()),
        table.loc[~member, "loss"].mean(),
        int((~member).sum()),
    )
    return table
