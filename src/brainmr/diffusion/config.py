from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoBaseConfig:
    resolution: int
    vae_channels: list[int]
    latent_channels: int
    unet_channels: list[int]
    text_hidden: int
    text_layers: int
    corpus_size: int
    vae_steps: int
    vae_crop: int | None
    vae_loss: str
    unet_steps: int
    batch_size: int
    learning_rate: float
    seed: int


@dataclass(frozen=True)
class DreamBoothConfig:
    resolution: int
    max_train_steps: int
    train_batch_size: int
    class_balance: str
    gradient_accumulation_steps: int
    learning_rate: float
    text_encoder_learning_rate: float | None
    lr_scheduler: str
    lr_warmup_steps: int
    gradient_checkpointing: bool
    mixed_precision: str
    train_text_encoder: bool
    with_prior_preservation: bool
    prior_loss_weight: float
    class_prompt: str
    num_class_images: int
    cache_latents: bool
    max_grad_norm: float
    use_8bit_adam: bool
    lora_rank: int
    lora_text_encoder: bool
    snr_gamma: float
    noise_offset: float
    caption_dropout: float
    ema_decay: float
    seed: int


@dataclass(frozen=True)
class DreamBoothRunConfig:
    """How a DreamBooth run is checkpointed and watched. None of it changes the trained model, so
    it is not part of the rule's params (changing it never reruns training) nor of the identity
    a checkpoint must match to be resumed."""

    checkpointing_steps: int
    checkpoints_total_limit: int
    keep_checkpoints: bool
    validation_steps: int
    validation_images: int


@dataclass(frozen=True)
class GenerateConfig:
    n_images: int
    batch_size: int
    scheduler: str
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str
    seed: int  # the generator seed of image 0 (brainmr.seeds.first_generator_seed), not a replicate
    mixed_precision: str


@dataclass(frozen=True)
class MembershipConfig:
    """How a slice's denoising loss is measured for the membership-inference attack (the
    privacy section): the timesteps and noise draws it is averaged over, their seed, the batch."""

    timesteps: list[int]
    noise_draws: int
    seed: int
    batch_size: int
