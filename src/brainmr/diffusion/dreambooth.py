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

from brainmr import io
from brainmr.diffusion import checkpoints as ckpt
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
from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig, GenerateConfig
from brainmr.diffusion.identity import base_model_digest, config_digest
from brainmr.diffusion.memory import (
    LORA_TEXT_MODULES,
    LORA_UNET_MODULES,
    WeightAverage,
    add_lora,
    make_optimizer,
    merge_lora,
    min_snr_weights,
    offset_noise,
    trainable_parameters,
)
from brainmr.diffusion.validation import save_grid, validation_figure, validation_grid
from brainmr.logs import progress

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "group", "prompt", "subject")
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


def balanced_batch(step: int, micro: int, groups: list[str], cfg) -> np.ndarray:
    """Instance indices of one micro-batch drawn equally from every class (``class_balance:
    oversample``): each class runs through its own seeded epochs, so the smaller class is seen
    more often and AD and CN come 1:1 whatever the class sizes."""
    labels = np.asarray(groups)
    classes = sorted(set(groups))
    shares = np.full(len(classes), cfg.train_batch_size // len(classes))
    shares[: cfg.train_batch_size % len(classes)] += 1
    parts = []
    for i, (name, share) in enumerate(zip(classes, shares, strict=True)):
        members = np.flatnonzero(labels == name)
        if share == 0:
            continue
        chosen = batch_indices(
            step,
            micro,
            n_items=len(members),
            batch_size=int(share),
            accumulation=cfg.gradient_accumulation_steps,
            seed=cfg.seed + 7919 * (i + 1),
        )
        parts.append(members[chosen])
    return np.concatenate(parts)


def step_batch(
    step: int, micro: int, n_instance: int, n_class: int, cfg, groups: list[str] | None = None
) -> np.ndarray:
    """Indices into instances + class images for one micro-batch: ``train_batch_size`` instance
    items (equally from each class of ``groups`` under ``class_balance: oversample``), then as
    many class items (prior preservation) offset by ``n_instance``."""
    sizes = {"batch_size": cfg.train_batch_size, "accumulation": cfg.gradient_accumulation_steps}
    if cfg.class_balance == "oversample" and groups is not None:
        idx = balanced_batch(step, micro, groups, cfg)
    else:
        idx = batch_indices(step, micro, n_items=n_instance, seed=cfg.seed, **sizes)
    if n_class == 0:
        return idx
    prior = batch_indices(step, micro, n_items=n_class, seed=cfg.seed + 1, **sizes)
    return np.concatenate([idx, prior + n_instance])


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
        self.empty_cache = None  # the empty prompt's, on first use (caption dropout)

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

    def embeddings(self, idx: torch.Tensor, empty: torch.Tensor | None = None) -> torch.Tensor:
        """Prompt embeddings of items ``idx``; where the boolean mask ``empty`` is set, those of
        the empty prompt instead (caption dropout)."""
        if self.cache_embeddings:
            out = self.embeddings_cache[self.prompt_index[idx]]
            if empty is not None and empty.any():
                if self.empty_cache is None:
                    with torch.no_grad():
                        self.empty_cache = encode_prompts(self.text_encoder, self.tokenizer, [""])
                out = torch.where(empty[:, None, None], self.empty_cache.to(out.dtype), out)
            return out
        prompts = [self.prompts[i] for i in idx.tolist()]
        if empty is not None:
            prompts = ["" if blank else p for p, blank in zip(prompts, empty.tolist(), strict=True)]
        ids = tokenize(self.tokenizer, prompts)
        with torch.set_grad_enabled(self.train_text):
            return self.text_encoder(ids.to(self.text_encoder.device))[0]


def _mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    per_item = ((pred - target) ** 2).mean(dim=tuple(range(1, pred.ndim)))
    return per_item.mean() if weights is None else (per_item * weights).mean()


def micro_step_loss(unet, inputs: TrainingInputs, scheduler, idx, n_instance, generator, cfg):
    """Noise-prediction MSE of one micro-batch (instance items first, then class items whose
    loss is weighted by ``prior_loss_weight``), min-SNR weighted, with offset noise and caption
    dropout where the config asks."""
    latents = inputs.latents(idx, generator)
    noise = offset_noise(latents.shape, generator, cfg.noise_offset).to(latents.device)
    steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (len(idx),), generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    empty = None  # drawn only when asked, so runs without dropout draw what they always did
    if cfg.caption_dropout > 0:
        empty = torch.rand(len(idx), generator=generator) < cfg.caption_dropout
    pred = unet(noisy, timesteps, inputs.embeddings(idx, empty)).sample.float()
    target = noise_target(scheduler, latents, noise, timesteps).float()
    weights = min_snr_weights(scheduler, timesteps, cfg.snr_gamma) if cfg.snr_gamma > 0 else None
    part = slice(None, n_instance)
    loss = _mse(pred[part], target[part], None if weights is None else weights[part])
    if len(idx) > n_instance:
        rest = slice(n_instance, None)
        prior = _mse(pred[rest], target[rest], None if weights is None else weights[rest])
        loss = loss + cfg.prior_loss_weight * prior
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


def class_images(base_model: str, cfg: DreamBoothConfig, folder: Path, base_digest: str):
    """Prior-preservation images of ``cfg.class_prompt`` from the base model, cached as PNGs in
    ``folder`` (image i from seed cfg.seed + i, so a partial cache is completed, not redone).
    The cache is keyed by the base's content digest: another base never reuses it."""
    from diffusers import StableDiffusionPipeline

    from brainmr.diffusion.generate import make_scheduler, sample_images

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


# ----------------------------------------------------------------------------- outputs
def validation_prompts(data: InstanceSet, per_class: int = 2) -> list[str]:
    """The instance prompts validation grids are drawn for: every one for fixed prompts (one per
    class); with templates (a prompt per age bin and sex), the first ``per_class`` of each class,
    so that validation's cost does not grow with the cohort."""
    chosen: set[str] = set()
    for group in sorted(set(data.groups)):
        prompts = sorted({p for p, g in zip(data.prompts, data.groups, strict=True) if g == group})
        chosen.update(prompts[:per_class])
    return sorted(chosen)


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
def parameter_groups(trained: list, cfg: DreamBoothConfig) -> list[dict]:
    """The optimizer's parameter groups: the UNet at ``learning_rate``; the text encoder (second
    of ``trained`` where it is trained) at ``text_encoder_learning_rate`` where set."""
    groups = [{"params": trainable_parameters(trained[:1]), "lr": cfg.learning_rate}]
    if len(trained) > 1:
        lr = cfg.text_encoder_learning_rate or cfg.learning_rate
        groups.append({"params": trainable_parameters(trained[1:]), "lr": lr})
    return groups


def _prepare_models(base, cfg: DreamBoothConfig, device, dtype) -> list:
    """Freeze what is not trained (frozen parts in ``dtype`` on the device), add LoRA adapters
    where asked; the models being trained, UNet first."""
    base.vae.requires_grad_(False).to(device).eval()
    base.text_encoder.requires_grad_(cfg.train_text_encoder).to(device)
    if dtype != torch.float32:  # (a float32 cast makes diffusers warn)
        base.vae.to(dtype)
        if not cfg.train_text_encoder:
            base.text_encoder.to(dtype)
    base.unet.to(device).train()
    if cfg.lora_rank > 0:
        add_lora(base.unet, cfg.lora_rank, LORA_UNET_MODULES)
        if cfg.train_text_encoder and cfg.lora_text_encoder:
            add_lora(base.text_encoder, cfg.lora_rank, LORA_TEXT_MODULES)
    if cfg.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        if cfg.train_text_encoder:
            base.text_encoder.gradient_checkpointing_enable()
    if cfg.train_text_encoder:
        base.text_encoder.train()
        return [base.unet, base.text_encoder]
    return [base.unet]


def _validation_pipeline(base, unet, text_encoder, gen_cfg: GenerateConfig):
    from diffusers import StableDiffusionPipeline

    from brainmr.diffusion.generate import make_scheduler

    pipe = StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=text_encoder,
        tokenizer=base.tokenizer,
        unet=unet,
        scheduler=make_scheduler(gen_cfg.scheduler, base.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def train_dreambooth(
    *,
    base_model: str,
    instances: pd.DataFrame,
    pipeline_dir: Path,
    work_dir: Path,
    cfg: DreamBoothConfig,
    run: DreamBoothRunConfig,
    gen_cfg: GenerateConfig,
    threads: int = 1,
) -> None:
    """Fine-tune ``base_model`` on the instance slices with their prompts; write the pipeline
    and its model card to ``pipeline_dir`` (atomically), and loss.tsv, loss.png and
    validation.png (grids sampled with ``gen_cfg``'s scheduler, steps and guidance) to
    ``work_dir``. Resumes from the newest checkpoint in ``work_dir/checkpoints`` made from the
    same instance set, settings and base model content."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    set_cpu_threads(threads)
    pipeline_dir, work_dir = Path(pipeline_dir), Path(work_dir)
    data = load_instance_set(instances)
    base_digest = base_model_digest(base_model)
    identity = {"instances": data.digest, "config": config_digest(cfg, base_digest)}
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
        extra = class_images(base_model, cfg, work_dir / "class_images", base_digest)
        pixels = torch.cat([pixels, slices_to_pixels(extra, cfg.resolution)])
        prompts += [cfg.class_prompt] * len(extra)
    trained = _prepare_models(base, cfg, device, dtype)
    inputs = TrainingInputs(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        pixels=pixels,
        prompts=prompts,
        cache_latents=cfg.cache_latents,
        train_text=cfg.train_text_encoder,
    )
    params = trainable_parameters(trained)
    optimizer = make_optimizer(
        parameter_groups(trained, cfg),
        learning_rate=cfg.learning_rate,
        use_8bit_adam=cfg.use_8bit_adam,
    )
    lr_schedule = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.max_train_steps,
    )
    *trained, optimizer = accelerator.prepare(*trained, optimizer)
    accelerator.register_for_checkpointing(lr_schedule)
    average = WeightAverage(params, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if average is not None:
        accelerator.register_for_checkpointing(average)
    checkpoints = work_dir / "checkpoints"
    ckpt.remove_stale_temporaries(checkpoints)
    start, history = ckpt.resume(accelerator, checkpoints, identity, cfg.max_train_steps)
    ckpt.prune(checkpoints, identity, keep=run.checkpoints_total_limit)
    validation_dir = work_dir / "validation"
    if start == 0 and validation_dir.exists():
        shutil.rmtree(validation_dir)  # grids of an earlier run
    instance_prompts = validation_prompts(data)
    n_instance = len(data.prompts)

    def validate(step: int) -> None:
        models = [accelerator.unwrap_model(m) for m in trained]
        for model in models:
            model.eval()
        pipe = _validation_pipeline(
            base, models[0], models[-1] if len(models) > 1 else base.text_encoder, gen_cfg
        )
        with accelerator.autocast():
            grid = validation_grid(
                pipe,
                instance_prompts,
                n_images=run.validation_images,
                gen_cfg=gen_cfg,
                resolution=cfg.resolution,
            )
        save_grid(validation_dir, step, grid, instance_prompts)
        for model in models:
            model.train()

    bar = progress(
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
            idx = step_batch(
                step, micro, n_instance, len(prompts) - n_instance, cfg, groups=data.groups
            )
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
        if average is not None:
            average.update()
        lr_schedule.step()
        history.append([step + 1, float(np.mean(losses)), lr])
        bar.set_postfix(loss=f"{history[-1][1]:.4f}")
        done = step + 1
        last = done == cfg.max_train_steps
        if run.validation_steps and done % run.validation_steps == 0 and not last:
            validate(done)
        # The final state is saved as a pipeline; a checkpoint of it only if it is kept.
        if done % run.checkpointing_steps == 0 and (not last or run.keep_checkpoints):
            ckpt.save_checkpoint(
                accelerator, checkpoints, done, identity, history, run.checkpoints_total_limit
            )
    bar.close()
    if average is not None:
        average.copy_to_params()  # the final model, its grid and the pipeline are the average
    if not (validation_dir / f"step-{cfg.max_train_steps:06d}.npz").is_file():
        validate(cfg.max_train_steps)
    write_loss_log(work_dir, history)
    validation_figure(validation_dir, work_dir / "validation.png", cfg.max_train_steps)
    models = [accelerator.unwrap_model(m) for m in trained]
    if cfg.lora_rank > 0:
        for model in models:
            merge_lora(model)
    card = model_card(base_model, data, cfg, cfg.max_train_steps)
    save_pipeline(
        base_model,
        models[0],
        models[1] if cfg.train_text_encoder else None,
        pipeline_dir,
        card,
        cfg.resolution,
    )
    if not run.keep_checkpoints and checkpoints.exists():
        shutil.rmtree(checkpoints)  # only needed to resume an unfinished run
    log.info("DreamBooth model written to %s", pipeline_dir)
