"""Helpers shared by the demo base, DreamBooth and generation: image scaling between slices and
model tensors, devices and precision, prompt encoding, seeding."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from brainmr.device import best_device

log = logging.getLogger(__name__)

PRECISIONS = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D float image to size x size (PIL filters when shrinking, so no
    aliasing)."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=True)
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def slices_to_pixels(slices: np.ndarray, resolution: int) -> torch.Tensor:
    """(N, H, W) grayscale in [0, 1] -> (N, 3, R, R) model input in [-1, 1] (gray replicated to
    RGB, since SD's VAE takes three channels)."""
    resized = np.stack([resize_image(s, resolution) for s in slices]).clip(0.0, 1.0)
    pixels = torch.from_numpy(resized)[:, None].repeat(1, 3, 1, 1)
    return pixels * 2.0 - 1.0


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) in [0, 1] -> (N, H, W) as the mean of the channels."""
    return images.mean(axis=-1).astype(np.float32)


def device_and_dtype(mixed_precision: str) -> tuple[torch.device, torch.dtype]:
    """The device to run on and the dtype of frozen weights. On CUDA: fp16 or bf16 as asked. On a
    CPU bf16 runs too (Accelerate's CPU autocast; frozen weights in bf16), which is how the tests
    exercise the half-precision branches; fp16 on a CPU falls back to float32."""
    device = best_device()
    if device.type == "cuda":
        return device, PRECISIONS[mixed_precision]
    if mixed_precision == "fp16":
        log.warning("mixed_precision=fp16 needs CUDA; running in float32 on CPU")
        return torch.device("cpu"), torch.float32
    return torch.device("cpu"), PRECISIONS[mixed_precision]


def effective_precision(mixed_precision: str) -> str:
    """The Accelerate mixed-precision mode actually used (fp16 only on CUDA)."""
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        return "no"
    return mixed_precision


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, step, ...): the same parts give the same
    stream, whatever ran before (this is what makes a resumed run repeat an uninterrupted one)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def cpu_generator(*parts: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(derived_seed(*parts))


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's length, as SD pipelines do; each prompt whole."""
    return tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def encode_prompts(text_encoder, tokenizer, prompts: list[str]) -> torch.Tensor:
    """Per-token embeddings (last hidden state) the UNet attends to."""
    ids = tokenize(tokenizer, prompts).to(text_encoder.device)
    return text_encoder(ids)[0]


def scale_latents(latents: torch.Tensor, vae) -> torch.Tensor:
    """VAE latents -> the UNet's latent space (SD: times 0.18215; shift where a VAE has one)."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor


def noise_target(scheduler, latents, noise, timesteps) -> torch.Tensor:
    """What the UNet learns to predict: the noise, or v where the scheduler says v-prediction."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r} in the base model's scheduler")
