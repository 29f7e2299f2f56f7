"""DreamBooth fine-tuning of a Stable Diffusion pipeline on an instance set (one run per prompt
condition, both classes together), in the shape of diffusers' DreamBooth example but short.

Resumable: checkpoints in ``work_dir/checkpoints/step-N`` carry the weights, optimizer, lr
schedule, RNG states and the loss history; the batch order and the noise of step s are derived
from (seed, s), so a resumed run repeats exactly what an uninterrupted run would have done."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from brainmr import io
from brainmr.diffusion.common import (
    cpu_generator,
    device_and_dtype,
    effective_precision,
    encode_prompts,
    noise_target,
    scale_latents,
    set_cpu_threads,
    slices_to_pixels,
    tokenize,
)
from brainmr.diffusion.config import DreamBoothConfig

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "group", "prompt", "subject")
KEEP_CHECKPOINTS = 2
CLASS_IMAGE_STEPS = 25  # class images (prior preservation) from the base, DPM-Solver++
CLASS_IMAGE_GUIDANCE = 7.5
ENCODE_CHUNK = 16


# ----------------------------------------------------------------------------- instance set
@dataclass(frozen=True)
class InstanceSet:
    slices: np.ndarray  # (N, H, W) float32 in [0, 1]
    prompts: list[str]  # one whole prompt per slice, commas and all
    groups: list[str]
    subjects: list[str]
    digest: str  # sha256 of the prompts, groups and slice contents, in order


def load_instance_set(instances: pd.DataFrame) -> InstanceSet:
    """Read and check the instance slices; errors name the file and the subject."""
    missing = [c for c in REQUIRED_COLUMNS if c not in instances.columns]
    if missing:
        raise ValueError(f"instance table lacks columns {missing} (has {list(instances.columns)})")
    if instances.empty:
        raise ValueError("instance table is empty: no slices to train on")
    digest = hashlib.sha256()
    slices = []
    for row in instances.itertuples(index=False):
        where = f"instance slice {row.path} (subject {row.subject})"
        if not isinstance(row.prompt, str) or not row.prompt.strip():
            raise ValueError(f"{where}: empty prompt")
        try:
            image = io.load_npy(row.path).astype(np.float32)
        except (OSError, ValueError) as err:
            raise ValueError(f"{where}: cannot be read: {err}") from err
        if image.ndim != 2 or not np.isfinite(image).all():
            raise ValueError(f"{where}: expected a finite 2-D array, got shape {image.shape}")
        if image.min() < -1e-3 or image.max() > 1 + 1e-3:
            raise ValueError(
                f"{where}: values outside [0, 1] ({image.min():.3g}..{image.max():.3g})"
            )
        if slices and image.shape != slices[0].shape:
            raise ValueError(f"{where}: shape {image.shape} differs from {slices[0].shape}")
        slices.append(image.clip(0, 1))
        for part in (row.prompt, str(row.group), str(image.shape)):
            digest.update(part.encode() + b"\0")
        digest.update(image.tobytes())
    return InstanceSet(
        slices=np.stack(slices),
        prompts=[str(p) for p in instances["prompt"]],
        groups=[str(g) for g in instances["group"]],
        subjects=[str(s) for s in instances["subject"]],
        digest=digest.hexdigest(),
    )


def batch_indices(
    step: int, micro: int, *, n_items: int, batch_size: int, accumulation: int, seed: int
) -> np.ndarray:
    """Item indices of micro-batch ``micro`` of optimizer step ``step`` (0-based): positions in
    an endless run of epochs, each a permutation seeded by (seed, epoch). A pure function of its
    arguments, so a resumed run draws the batches an uninterrupted one would have."""
    start = (step * accumulation + micro) * batch_size
    positions = np.arange(start, start + batch_size)
    epochs = positions // n_items
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([seed, int(epoch)]).permutation(n_items)
        chosen = epochs == epoch
        out[chosen] = order[positions[chosen] % n_items]
    return out


def step_batch(step: int, micro: int, n_instance: int, n_class: int, cfg) -> np.ndarray:
    """Indices into instances + class images for one micro-batch: ``train_batch_size`` instance
    items, then as many class items (prior preservation) offset by ``n_instance``."""
    sizes = {"batch_size": cfg.train_batch_size, "accumulation": cfg.gradient_accumulation_steps}
    idx = batch_indices(step, micro, n_items=n_instance, seed=cfg.seed, **sizes)
    if n_class == 0:
        return idx
    prior = batch_indices(step, micro, n_items=n_class, seed=cfg.seed + 1, **sizes)
    return np.concatenate([idx, prior + n_instance])


def config_digest(cfg: DreamBoothConfig, base_model: str) -> str:
    """What a checkpoint must match to be resumed: every setting that changes training (how
    often checkpoints are written does not)."""
    settings = dataclasses.asdict(cfg) | {"base_model": str(base_model)}
    settings.pop("checkpointing_steps")
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- latents + prompts
class TrainingInputs:
    """Latents and prompt embeddings of a batch. The VAE is always frozen: with
    ``cache_latents`` its posterior means/stds are computed once and a latent is sampled per
    step (mean + std * noise: the same draw ``latent_dist.sample`` makes). Prompt embeddings
    are cached too unless the text encoder is trained (``train_text``)."""

    def __init__(self, *, vae, text_encoder, tokenizer, pixels, prompts, cache_latents, train_text):
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.pixels, self.prompts = pixels, list(prompts)
        self.cache_latents, self.train_text = cache_latents, train_text
        self.cache_embeddings = cache_latents and not train_text
        self.device, self.dtype = vae.device, vae.dtype
        if cache_latents:
            self.mean, self.std = self._posterior(pixels)
            self.pixels = None  # not needed again (SD at 512 px: 3 MB per image)
        if self.cache_embeddings:
            unique = sorted(set(self.prompts))
            self.prompt_index = torch.tensor([unique.index(p) for p in self.prompts])
            with torch.no_grad():
                self.embeddings_cache = encode_prompts(text_encoder, tokenizer, unique)

    @torch.no_grad()
    def _posterior(self, pixels):
        dists = [
            self.vae.encode(chunk.to(self.device, self.dtype)).latent_dist
            for chunk in pixels.split(ENCODE_CHUNK)
        ]
        return torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])

    def latents(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.cache_latents:
            mean, std = self.mean[idx], self.std[idx]
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(self.device)
            sample = mean + std * eps
        else:
            with torch.no_grad():
                dist = self.vae.encode(self.pixels[idx].to(self.device, self.dtype)).latent_dist
                sample = dist.sample(generator=generator)
        return scale_latents(sample, self.vae).float()

    def embeddings(self, idx: torch.Tensor) -> torch.Tensor:
        if self.cache_embeddings:
            return self.embeddings_cache[self.prompt_index[idx]]
        ids = tokenize(self.tokenizer, [self.prompts[i] for i in idx.tolist()])
        with torch.set_grad_enabled(self.train_text):
            return self.text_encoder(ids.to(self.text_encoder.device))[0]


def micro_step_loss(unet, inputs: TrainingInputs, scheduler, idx, n_instance, generator, cfg):
    """Noise-prediction MSE of one micro-batch (instance items first, then class items whose
    loss is weighted by ``prior_loss_weight``)."""
    latents = inputs.latents(idx, generator)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (len(idx),), generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, inputs.embeddings(idx)).sample.float()
    target = noise_target(scheduler, latents, noise, timesteps).float()
    loss = F.mse_loss(pred[:n_instance], target[:n_instance])
    if len(idx) > n_instance:
        loss = loss + cfg.prior_loss_weight * F.mse_loss(pred[n_instance:], target[n_instance:])
    return loss


# ----------------------------------------------------------------------------- base + class images
def load_base(base_model: str):
    from diffusers import StableDiffusionPipeline

    try:
        return StableDiffusionPipeline.from_pretrained(
            str(base_model), safety_checker=None, requires_safety_checker=False
        )
    except OSError as err:
        raise ValueError(f"base model {base_model!r}: not a loadable SD pipeline: {err}") from err


def class_images(base_model: str, cfg: DreamBoothConfig, folder: Path) -> np.ndarray:
    """Prior-preservation images of ``cfg.class_prompt`` from the base model, cached as PNGs in
    ``folder`` (image i from seed cfg.seed + i, so a partial cache is completed, not redone)."""
    from diffusers import StableDiffusionPipeline

    from brainmr.diffusion.generate import make_scheduler, sample_images

    key = {"base_model": str(base_model), "prompt": cfg.class_prompt, "size": cfg.resolution}
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
        for start in tqdm(range(0, len(todo), 8), desc="class images", unit="batch"):
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


# ----------------------------------------------------------------------------- checkpoints
def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.split("-")[1]), p) for p in folder.glob("step-*") if p.is_dir()]
    return sorted(found)


def _matches(path: Path, identity: dict) -> dict | None:
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if all(meta.get(k) == v for k, v in identity.items()) else None


def _save_checkpoint(accelerator, folder: Path, step: int, identity: dict, history: list) -> None:
    """Write step-N atomically, then keep the newest KEEP_CHECKPOINTS of this run (checkpoints
    of another instance set or config are stale for this work_dir and removed)."""
    with io.atomic_dir(folder / f"step-{step}") as tmp:
        accelerator.save_state(str(tmp))
        io.write_json(Path(tmp) / "meta.json", identity | {"step": step, "history": history})
    ours = [p for _, p in _checkpoints(folder) if _matches(p, identity)]
    for path in [p for _, p in _checkpoints(folder) if p not in ours] + ours[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(path)


def _resume(accelerator, folder: Path, identity: dict, max_steps: int) -> tuple[int, list]:
    """Load the newest checkpoint of this run; (0, []) when there is none."""
    for step, path in reversed(_checkpoints(folder)):
        meta = _matches(path, identity)
        if meta is not None and step <= max_steps:
            accelerator.load_state(str(path))
            log.info("resuming from %s (step %d)", path, step)
            return step, [list(row) for row in meta["history"]]
    return 0, []


# ----------------------------------------------------------------------------- outputs
def write_loss_log(work_dir: Path, history: list) -> None:
    """loss.tsv (step, loss, lr) and loss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame(history, columns=["step", "loss", "lr"])
    io.write_tsv(work_dir / "loss.tsv", table)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(table.step, table.loss, lw=0.6, alpha=0.5, label="loss")
    window = max(1, len(table) // 20)
    ax.plot(table.step, table.loss.rolling(window, min_periods=1).mean(), label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="noise-prediction MSE", title="DreamBooth training loss")
    ax.legend()
    io.save_figure(work_dir / "loss.png", fig)


def model_card(base_model: str, data: InstanceSet, cfg: DreamBoothConfig, steps: int) -> str:
    table = pd.DataFrame({"group": data.groups, "prompt": data.prompts, "subject": data.subjects})
    prompts = table.groupby(["group", "prompt"]).agg(
        images=("subject", "size"), subjects=("subject", "nunique")
    )
    lines = [
        f"- `{p}` ({g}: {r.images} slices, {r.subjects} subjects)"
        for (g, p), r in prompts.iterrows()
    ]
    params = "\n".join(f"| {k} | {v} |" for k, v in dataclasses.asdict(cfg).items())
    return (
        "# DreamBooth brain MR model (brainmr)\n\n"
        f"Base model: `{base_model}`\n\nInstance prompts (both classes in one run):\n"
        + "\n".join(lines)
        + f"\n\nTrained steps: {steps}\n\nInstance-set hash (sha256): `{data.digest}`\n\n"
        "Load with `StableDiffusionPipeline.from_pretrained(<this folder>)` and prompt with one "
        "of the instance prompts above.\n\n| hyper-parameter | value |\n|---|---|\n" + params + "\n"
    )


def save_pipeline(base_model, unet, text_encoder, pipeline_dir: Path, card: str, resolution: int):
    """The full pipeline with the trained UNet (and text encoder); the frozen parts are read
    again from the base, in its own precision."""
    from diffusers import StableDiffusionPipeline

    extra = {"text_encoder": text_encoder} if text_encoder is not None else {}
    pipe = StableDiffusionPipeline.from_pretrained(
        str(base_model), unet=unet, safety_checker=None, requires_safety_checker=False, **extra
    )
    # Sample at the trained resolution by default (SD 2.x 768 bases may be tuned at 512).
    unet.register_to_config(sample_size=resolution // pipe.vae_scale_factor)
    with io.atomic_dir(pipeline_dir) as tmp:
        pipe.save_pretrained(tmp)
        io.write_text(Path(tmp) / "README.md", card)


# ----------------------------------------------------------------------------- training
def _prepare_models(base, cfg: DreamBoothConfig, device, dtype):
    """Freeze what is not trained; frozen parts in ``dtype`` on the device."""
    base.vae.requires_grad_(False).to(device).eval()
    base.text_encoder.requires_grad_(cfg.train_text_encoder).to(device)
    if dtype != torch.float32:  # (a float32 cast makes diffusers warn)
        base.vae.to(dtype)
        if not cfg.train_text_encoder:
            base.text_encoder.to(dtype)
    base.unet.train()
    if cfg.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        if cfg.train_text_encoder:
            base.text_encoder.gradient_checkpointing_enable()
    if cfg.train_text_encoder:
        base.text_encoder.train()


def train_dreambooth(
    *,
    base_model: str,
    instances: pd.DataFrame,
    pipeline_dir: Path,
    work_dir: Path,
    cfg: DreamBoothConfig,
    threads: int = 1,
) -> None:
    """Fine-tune ``base_model`` on the instance slices with their prompts; write the pipeline
    and its model card to ``pipeline_dir`` (atomically) and loss.tsv / loss.png to ``work_dir``.
    Resumes from the newest matching checkpoint in ``work_dir/checkpoints``."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    set_cpu_threads(threads)
    pipeline_dir, work_dir = Path(pipeline_dir), Path(work_dir)
    data = load_instance_set(instances)
    identity = {"instances": data.digest, "config": config_digest(cfg, base_model)}
    accelerator = Accelerator(
        mixed_precision=effective_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )
    device, dtype = accelerator.device, device_and_dtype(cfg.mixed_precision)[1]
    torch.manual_seed(cfg.seed)
    base = load_base(base_model)
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    multiple = base.vae_scale_factor * 2 ** (len(base.unet.config.block_out_channels) - 1)
    if cfg.resolution % multiple:
        raise ValueError(
            f"dreambooth.resolution {cfg.resolution}: {base_model} needs a multiple of {multiple}"
        )
    pixels, prompts = slices_to_pixels(data.slices, cfg.resolution), list(data.prompts)
    if cfg.with_prior_preservation:
        extra = class_images(base_model, cfg, work_dir / "class_images")
        pixels = torch.cat([pixels, slices_to_pixels(extra, cfg.resolution)])
        prompts += [cfg.class_prompt] * len(extra)
    _prepare_models(base, cfg, device, dtype)
    inputs = TrainingInputs(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        pixels=pixels,
        prompts=prompts,
        cache_latents=cfg.cache_latents,
        train_text=cfg.train_text_encoder,
    )
    trained = [base.unet] + ([base.text_encoder] if cfg.train_text_encoder else [])
    params = [p for model in trained for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)
    lr_schedule = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.max_train_steps,
    )
    *trained, optimizer = accelerator.prepare(*trained, optimizer)
    accelerator.register_for_checkpointing(lr_schedule)
    checkpoints = work_dir / "checkpoints"
    start, history = _resume(accelerator, checkpoints, identity, cfg.max_train_steps)
    n_instance = len(data.prompts)
    bar = tqdm(
        range(start, cfg.max_train_steps),
        initial=start,
        total=cfg.max_train_steps,
        desc=f"DreamBooth {pipeline_dir.name}",
        unit="step",
    )
    for step in bar:
        lr = lr_schedule.get_last_lr()[0]
        losses = []
        for micro in range(cfg.gradient_accumulation_steps):
            idx = step_batch(step, micro, n_instance, len(prompts) - n_instance, cfg)
            log.debug("step %d micro %d batch %s", step + 1, micro, idx.tolist())
            with accelerator.accumulate(*trained):
                loss = micro_step_loss(
                    trained[0],
                    inputs,
                    noise_scheduler,
                    torch.from_numpy(idx),
                    cfg.train_batch_size,
                    cpu_generator(cfg.seed, step, micro),
                    cfg,
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().item())
        lr_schedule.step()
        history.append([step + 1, float(np.mean(losses)), lr])
        bar.set_postfix(loss=f"{history[-1][1]:.4f}")
        done = step + 1
        if done % cfg.checkpointing_steps == 0 or done == cfg.max_train_steps:
            _save_checkpoint(accelerator, checkpoints, done, identity, history)
    bar.close()
    write_loss_log(work_dir, history)
    text_encoder = accelerator.unwrap_model(trained[1]) if cfg.train_text_encoder else None
    card = model_card(base_model, data, cfg, cfg.max_train_steps)
    save_pipeline(
        base_model,
        accelerator.unwrap_model(trained[0]),
        text_encoder,
        pipeline_dir,
        card,
        cfg.resolution,
    )
    log.info("DreamBooth model written to %s", pipeline_dir)
