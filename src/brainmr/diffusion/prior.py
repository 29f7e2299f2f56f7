"""Prior-preservation images: pictures of the class prompt drawn by the base model before it is
fine-tuned, trained on beside the instances so that the class keeps its meaning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from brainmr import io
from brainmr.diffusion.common import device_and_dtype
from brainmr.diffusion.config import DreamBoothConfig
from brainmr.diffusion.generate import make_scheduler, sample_images
from brainmr.logs import progress

CLASS_IMAGE_STEPS = 25  # class images (prior preservation) from the base, DPM-Solver++
CLASS_IMAGE_GUIDANCE = 7.5


def class_images(base_model: str, cfg: DreamBoothConfig, folder: Path, base_digest: str):
    """Prior-preservation images of ``cfg.class_prompt`` from the base model, cached as PNGs in
    ``folder`` (image i from seed cfg.seed + i, so a partial cache is completed, not redone).
    The cache is keyed by the base's content digest: another base never reuses it."""
    from diffusers import StableDiffusionPipeline

    key = {"base_model": base_digest, "prompt": cfg.class_prompt, "size": cfg.resolution}
    key["seed"] = cfg.seed
    stamp = folder / "class_images.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) != key:
        shutil.rmtree(folder)  # made by another base, prompt or size
    io.write_json(stamp, key)
    paths = [folder / f"class_{i:04d}.png" for i in range(cfg.num_class_images)]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        # A separate copy (half precision on CUDA) so the weights to be trained stay untouched.
        device, dtype = device_and_dtype(cfg.mixed_precision)
        pipe = StableDiffusionPipeline.from_pretrained(
            str(base_model), dtype=dtype, safety_checker=None, requires_safety_checker=False
        ).to(device)
        pipe.scheduler = make_scheduler("dpmsolver++", pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        for start in progress(range(0, len(todo), 8), desc="class images", unit="batch"):
            chunk = todo[start : start + 8]
            images = sample_images(
                pipe,
                prompt=cfg.class_prompt,
                seeds=[cfg.seed + i for i in chunk],
                num_inference_steps=CLASS_IMAGE_STEPS,
                guidance_scale=CLASS_IMAGE_GUIDANCE,
                resolution=cfg.resolution,
            )
            for i, image in zip(chunk, images, strict=True):
                io.save_png_gray(paths[i], image)
        del pipe
    return np.stack([io.load_png_gray(p) for p in paths])
