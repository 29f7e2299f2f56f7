"""Image generation from a DreamBooth pipeline folder: N images of one prompt, image i from seed
``cfg.seed + i`` with its own generator, so any image can be regenerated alone and the batch size
never changes a result."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainmr import SLICE_SIZE, io
from brainmr.diffusion.common import device_and_dtype, resize_image, rgb_to_gray
from brainmr.diffusion.config import GenerateConfig
from brainmr.logs import progress
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)

SCHEDULERS = ("dpmsolver++", "ddim", "pndm", "ddpm")


def make_scheduler(name: str, base_config):
    """The sampling scheduler ``name``, built from the pipeline's own scheduler config (so the
    model's noise schedule and prediction type carry over)."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(base_config, algorithm_type="dpmsolver++")
    classes = {"ddim": DDIMScheduler, "pndm": PNDMScheduler, "ddpm": DDPMScheduler}
    if name not in classes:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {SCHEDULERS}")
    return classes[name].from_config(base_config)


def load_pipeline(model_dir: Path, *, scheduler: str, mixed_precision: str = "no"):
    """A pipeline folder on the best device, with the sampling scheduler swapped in."""
    from diffusers import StableDiffusionPipeline

    device, dtype = device_and_dtype(mixed_precision)
    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: not a diffusers pipeline folder (no model_index.json)"
        )
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@torch.no_grad()
def sample_images(
    pipe,
    *,
    prompt: str | list[str],
    seeds: list[int],
    num_inference_steps: int,
    guidance_scale: float,
    negative_prompt: str = "",
    resolution: int | None = None,
) -> np.ndarray:
    """Grayscale images (len(seeds), R, R) in [0, 1] at ``resolution`` (default: the model's),
    one generator per image (seeded with its own seed) so each image is independent of its
    batch. ``prompt``: one for all images, or one per image (instructions beyond the class)."""
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    prompts = [prompt] * len(seeds) if isinstance(prompt, str) else list(prompt)
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts for {len(seeds)} images")
    out = pipe(
        prompt=prompts,
        negative_prompt=[negative_prompt] * len(seeds) if negative_prompt else None,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=generators,
        height=resolution,
        width=resolution,
        output_type="np",
    ).images
    return rgb_to_gray(np.asarray(out, dtype=np.float32)).clip(0.0, 1.0)


def image_name(condition: str, group: str, index: int) -> str:
    return f"{condition}_{group}_{index:03d}.png"


def _generate(pipe, prompt, indices: list[int], cfg: GenerateConfig, image_size: int):
    """Images ``indices`` of a set; ``prompt`` is one string or the set's list (one per image)."""
    images = sample_images(
        pipe,
        prompt=prompt if isinstance(prompt, str) else [prompt[i] for i in indices],
        seeds=[cfg.seed + i for i in indices],
        num_inference_steps=cfg.num_inference_steps,
        guidance_scale=cfg.guidance_scale,
        negative_prompt=cfg.negative_prompt,
    )
    return [resize_image(image, image_size).clip(0.0, 1.0) for image in images]


def write_image_set(
    pipe,
    *,
    prompt: str,
    condition: str,
    group: str,
    out_dir: Path,
    cfg: GenerateConfig,
    image_size: int = SLICE_SIZE,
    requests: pd.DataFrame | None = None,
) -> None:
    """Write ``cfg.n_images`` images of ``prompt`` (8-bit grayscale PNGs, image_size squared)
    and manifest.tsv (file, generator_seed, prompt, condition, group) into ``out_dir``,
    atomically; image i's generator seed is ``cfg.seed + i`` (brainmr.seeds). With ``requests``
    (one row per image: prompt, requested_age, requested_sex, age_bin), image i is drawn from its
    own prompt and the manifest carries its request."""
    if requests is not None:
        if len(requests) != cfg.n_images:
            raise ValueError(f"{len(requests)} instruction requests for {cfg.n_images} images")
        prompt = requests["prompt"].astype(str).tolist()
    rows = []
    with (
        io.atomic_dir(out_dir) as tmp,
        progress(total=cfg.n_images, desc=f"generate {condition}/{group}", unit="img") as bar,
    ):
        for start in range(0, cfg.n_images, cfg.batch_size):
            indices = list(range(start, min(start + cfg.batch_size, cfg.n_images)))
            images = _generate(pipe, prompt, indices, cfg, image_size)
            for i, image in zip(indices, images, strict=True):
                name = image_name(condition, group, i)
                io.save_png_gray(Path(tmp) / name, image)
                text = prompt if isinstance(prompt, str) else prompt[i]
                rows.append((name, cfg.seed + i, text, condition, group))
            bar.update(len(indices))
        columns = ["file", "generator_seed", "prompt", "condition", "group"]
        manifest = pd.DataFrame(rows, columns=columns)
        if requests is not None:
            asked = requests[["requested_age", "requested_sex", "age_bin"]].reset_index(drop=True)
            manifest = pd.concat([manifest, asked], axis=1)
        io.write_tsv(Path(tmp) / "manifest.tsv", manifest)
    log.info(
        "%d images of %r -> %s",
        cfg.n_images,
        prompt if requests is None else "instructions",
        out_dir,
    )


def generate_images(
    *,
    model_dir: Path,
    prompt: str,
    condition: str,
    group: str,
    out_dir: Path,
    cfg: GenerateConfig,
    image_size: int = SLICE_SIZE,
    threads: int = 1,
) -> None:
    """One image set of one prompt from a pipeline folder (see ``write_image_set``)."""
    generate_image_sets(
        model_dirs={group: model_dir},
        prompts={group: prompt},
        condition=condition,
        out_dirs={group: out_dir},
        cfgs={group: cfg},
        image_size=image_size,
        threads=threads,
    )


def generate_image_sets(
    *,
    model_dirs: dict[str, Path],
    prompts: dict[str, str],
    condition: str,
    out_dirs: dict[str, Path],
    cfgs: dict[str, GenerateConfig],
    image_size: int = SLICE_SIZE,
    threads: int = 1,
    requests: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Every class's image set of a condition: ``model_dirs``, ``prompts``, ``out_dirs`` and
    ``cfgs`` map class -> pipeline folder, prompt, output folder and settings (guidance and
    negative prompt may differ by class). A model shared by classes is loaded once.
    ``requests``: class -> one instruction request per image (templated conditions)."""
    for name, mapping in (("models", model_dirs), ("folders", out_dirs), ("settings", cfgs)):
        if set(mapping) != set(prompts):
            raise ValueError(f"prompts for {sorted(prompts)} but {name} for {sorted(mapping)}")
    limit_threads(threads, torch=True)
    loaded = {}
    for group, prompt in prompts.items():
        cfg = cfgs[group]
        key = (str(model_dirs[group]), cfg.scheduler, cfg.mixed_precision)
        if key not in loaded:
            loaded[key] = load_pipeline(
                model_dirs[group], scheduler=cfg.scheduler, mixed_precision=cfg.mixed_precision
            )
        write_image_set(
            loaded[key],
            prompt=prompt,
            condition=condition,
            group=group,
            out_dir=Path(out_dirs[group]),
            cfg=cfg,
            image_size=image_size,
            requests=(requests or {}).get(group),
        )


def regenerate_image(
    *, model_dir: Path, prompt: str, index: int, cfg: GenerateConfig, image_size: int = SLICE_SIZE
) -> np.ndarray:
    """Image ``index`` of a ``generate_images`` run, alone: (image_size, image_size) in [0, 1],
    before 8-bit rounding."""
    pipe = load_pipeline(model_dir, scheduler=cfg.scheduler, mixed_precision=cfg.mixed_precision)
    return _generate(pipe, prompt, [index], cfg, image_size)[0]
