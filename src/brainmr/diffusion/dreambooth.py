"""DreamBooth fine-tuning of a Stable Diffusion pipeline on an instance set (one run per prompt
condition, both classes together), in the shape of diffusers' DreamBooth example but short.

Resumable: checkpoints in ``work_dir/checkpoints/step-N`` carry the trained weights (the LoRA
adapters alone where LoRA is on), optimizer, lr schedule, weight average, RNG states and the
loss history; the batch order and the noise of step s are derived from (seed, s), so a resumed
run repeats exactly what an uninterrupted run would have done."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from brainmr.diffusion import checkpoints as ckpt
from brainmr.diffusion.artifacts import model_card, save_pipeline, write_loss_log
from brainmr.diffusion.batches import InstanceSet, load_instance_set, step_batch
from brainmr.diffusion.common import (
    cpu_generator,
    device_and_dtype,
    effective_precision,
    slices_to_pixels,
)
from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig, GenerateConfig
from brainmr.diffusion.generate import make_scheduler
from brainmr.diffusion.identity import base_model_digest, config_digest
from brainmr.diffusion.lora import (
    LORA_TEXT_MODULES,
    LORA_UNET_MODULES,
    add_lora,
    checkpoint_adapters_only,
    has_lora,
    merge_lora,
)
from brainmr.diffusion.loss import TrainingInputs, micro_step_loss
from brainmr.diffusion.optim import (
    make_optimizer,
    parameter_groups,
    trainable_parameters,
    weight_average,
)
from brainmr.diffusion.prior import class_images
from brainmr.diffusion.validation import (
    save_grid,
    validation_figure,
    validation_grid,
    validation_prompts,
)
from brainmr.logs import progress
from brainmr.threads import limit_threads

log = logging.getLogger(__name__)


@dataclass
class Training:
    """One run's state as the loop steps it: the prepared models (UNet first), their inputs,
    optimizer, lr schedule and weight average (None where off), and the settings."""

    accelerator: Any
    base: Any  # the base pipeline: its frozen parts draw the validation grids
    trained: list
    params: list
    inputs: TrainingInputs
    noise_scheduler: Any
    optimizer: Any
    lr_schedule: Any
    average: Any
    groups: list[str]
    n_instance: int
    n_class: int
    cfg: DreamBoothConfig
    run: DreamBoothRunConfig
    gen_cfg: GenerateConfig
    validation_dir: Path
    validation_prompts: list[str]


# ----------------------------------------------------------------------------- set-up
def load_base(base_model: str):
    from diffusers import StableDiffusionPipeline

    try:
        return StableDiffusionPipeline.from_pretrained(
            str(base_model), safety_checker=None, requires_safety_checker=False
        )
    except OSError as err:
        raise ValueError(f"base model {base_model!r}: not a loadable SD pipeline: {err}") from err


def _check_resolution(base, base_model: str, resolution: int) -> None:
    multiple = base.vae_scale_factor * 2 ** (len(base.unet.config.block_out_channels) - 1)
    if resolution % multiple:
        raise ValueError(
            f"dreambooth.resolution {resolution}: {base_model} needs a multiple of {multiple}"
        )


def _training_images(data: InstanceSet, cfg, base_model: str, work_dir: Path, base_digest: str):
    """Pixels and prompts of the instances, then of the class images (prior preservation)."""
    pixels, prompts = slices_to_pixels(data.slices, cfg.resolution), list(data.prompts)
    if cfg.with_prior_preservation:
        extra = class_images(base_model, cfg, work_dir / "class_images", base_digest)
        pixels = torch.cat([pixels, slices_to_pixels(extra, cfg.resolution)])
        prompts += [cfg.class_prompt] * len(extra)
    return pixels, prompts


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


def _adapted(trained: list) -> dict:
    """The trained models (UNet, then text encoder) that carry LoRA adapters, by name."""
    names = ("unet", "text_encoder")[: len(trained)]
    return {n: m for n, m in zip(names, trained, strict=True) if has_lora(m)}


def _optimizer_and_schedule(trained: list, cfg: DreamBoothConfig):
    from diffusers.optimization import get_scheduler

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
    return optimizer, lr_schedule


def start_training(
    *, base_model: str, data: InstanceSet, base_digest: str, work_dir: Path, cfg, run, gen_cfg
) -> Training:
    """Load the base, make the training images, prepare models, inputs, optimizer, lr schedule
    and weight average with Accelerate (all registered for checkpointing)."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    accelerator = Accelerator(
        mixed_precision=effective_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )
    device, dtype = accelerator.device, device_and_dtype(cfg.mixed_precision)[1]
    torch.manual_seed(cfg.seed)
    base = load_base(base_model)
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    _check_resolution(base, base_model, cfg.resolution)
    pixels, prompts = _training_images(data, cfg, base_model, work_dir, base_digest)
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
    optimizer, lr_schedule = _optimizer_and_schedule(trained, cfg)
    *trained, optimizer = accelerator.prepare(*trained, optimizer)
    accelerator.register_for_checkpointing(lr_schedule)
    average = weight_average(params, cfg.ema_decay)
    if average is not None:
        accelerator.register_for_checkpointing(average)
    if adapted := _adapted(trained):
        checkpoint_adapters_only(accelerator, adapted)
    return Training(
        accelerator=accelerator,
        base=base,
        trained=trained,
        params=params,
        inputs=inputs,
        noise_scheduler=noise_scheduler,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        average=average,
        groups=data.groups,
        n_instance=len(data.prompts),
        n_class=len(prompts) - len(data.prompts),
        cfg=cfg,
        run=run,
        gen_cfg=gen_cfg,
        validation_dir=work_dir / "validation",
        validation_prompts=validation_prompts(data.prompts, data.groups),
    )


# ----------------------------------------------------------------------------- steps
def train_step(t: Training, step: int) -> float:
    """Optimizer step ``step`` (0-based) over its micro-batches; the mean micro-batch loss."""
    cfg = t.cfg
    losses = []
    for micro in range(cfg.gradient_accumulation_steps):
        idx = step_batch(step, micro, t.n_instance, t.n_class, cfg, groups=t.groups)
        log.debug("step %d micro %d batch %s", step + 1, micro, idx.tolist())
        with t.accelerator.accumulate(*t.trained):
            loss = micro_step_loss(
                t.trained[0],
                t.inputs,
                t.noise_scheduler,
                torch.from_numpy(idx),
                cfg.train_batch_size,
                cpu_generator(cfg.seed, step, micro),
                cfg,
            )
            t.accelerator.backward(loss)
            if t.accelerator.sync_gradients:
                t.accelerator.clip_grad_norm_(t.params, cfg.max_grad_norm)
            t.optimizer.step()
            t.optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
    if t.average is not None:
        t.average.step(t.params)
    t.lr_schedule.step()
    return float(np.mean(losses))


def _validation_pipeline(base, unet, text_encoder, gen_cfg: GenerateConfig):
    from diffusers import StableDiffusionPipeline

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


def validate(t: Training, step: int) -> None:
    """The validation grid of the model as it is at ``step``."""
    models = [t.accelerator.unwrap_model(m) for m in t.trained]
    for model in models:
        model.eval()
    text_encoder = models[-1] if len(models) > 1 else t.base.text_encoder
    pipe = _validation_pipeline(t.base, models[0], text_encoder, t.gen_cfg)
    with t.accelerator.autocast():
        grid = validation_grid(
            pipe,
            t.validation_prompts,
            n_images=t.run.validation_images,
            gen_cfg=t.gen_cfg,
            resolution=t.cfg.resolution,
        )
    save_grid(t.validation_dir, step, grid, t.validation_prompts)
    for model in models:
        model.train()


def run_steps(t: Training, start: int, history: list, checkpoints: Path, identity: dict, desc):
    """Steps ``start``..max_train_steps, appending (step, loss, lr) to ``history``, with
    validation grids and checkpoints as the run config asks."""
    cfg, run = t.cfg, t.run
    bar = progress(
        range(start, cfg.max_train_steps),
        initial=start,
        total=cfg.max_train_steps,
        desc=desc,
        unit="step",
    )
    for step in bar:
        lr = t.lr_schedule.get_last_lr()[0]
        history.append([step + 1, train_step(t, step), lr])
        bar.set_postfix(loss=f"{history[-1][1]:.4f}")
        done = step + 1
        last = done == cfg.max_train_steps
        if run.validation_steps and done % run.validation_steps == 0 and not last:
            validate(t, done)
        # The final state is saved as a pipeline; a checkpoint of it only if it is kept.
        if done % run.checkpointing_steps == 0 and (not last or run.keep_checkpoints):
            ckpt.save_checkpoint(
                t.accelerator, checkpoints, done, identity, history, run.checkpoints_total_limit
            )
    bar.close()


def finish(t: Training, *, base_model: str, data: InstanceSet, pipeline_dir, work_dir, history):
    """The final model (the weight average where on, LoRA merged), its last validation grid,
    the loss log, validation figure and the pipeline with its model card."""
    cfg = t.cfg
    if t.average is not None:
        t.average.copy_to(t.params)  # the final model, its grid and the pipeline are the average
    if not (t.validation_dir / f"step-{cfg.max_train_steps:06d}.npz").is_file():
        validate(t, cfg.max_train_steps)
    write_loss_log(work_dir, history)
    validation_figure(t.validation_dir, work_dir / "validation.png", cfg.max_train_steps)
    models = [t.accelerator.unwrap_model(m) for m in t.trained]
    for model in _adapted(models).values():
        merge_lora(model)
    card = model_card(base_model, data, cfg, cfg.max_train_steps)
    text_encoder = models[1] if cfg.train_text_encoder else None
    save_pipeline(base_model, models[0], text_encoder, pipeline_dir, card, cfg.resolution)


# ----------------------------------------------------------------------------- the job
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
    limit_threads(threads, torch=True)
    pipeline_dir, work_dir = Path(pipeline_dir), Path(work_dir)
    data = load_instance_set(instances)
    base_digest = base_model_digest(base_model)
    identity = {"instances": data.digest, "config": config_digest(cfg, base_digest)}
    t = start_training(
        base_model=base_model,
        data=data,
        base_digest=base_digest,
        work_dir=work_dir,
        cfg=cfg,
        run=run,
        gen_cfg=gen_cfg,
    )
    checkpoints = work_dir / "checkpoints"
    ckpt.remove_stale_temporaries(checkpoints)
    start, history = ckpt.resume(t.accelerator, checkpoints, identity, cfg.max_train_steps)
    ckpt.prune(checkpoints, identity, keep=run.checkpoints_total_limit)
    if start == 0 and t.validation_dir.exists():
        shutil.rmtree(t.validation_dir)  # grids of an earlier run
    run_steps(t, start, history, checkpoints, identity, desc=f"DreamBooth {pipeline_dir.name}")
    finish(
        t,
        base_model=base_model,
        data=data,
        pipeline_dir=pipeline_dir,
        work_dir=work_dir,
        history=history,
    )
    if not run.keep_checkpoints and checkpoints.exists():
        shutil.rmtree(checkpoints)  # only needed to resume an unfinished run
    log.info("DreamBooth model written to %s", pipeline_dir)
