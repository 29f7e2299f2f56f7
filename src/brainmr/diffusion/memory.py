"""Options that fit DreamBooth on smaller GPUs or change how it learns: 8-bit AdamW
(bitsandbytes), LoRA adapters (peft) merged back into plain weights, min-SNR weighting, the
noise offset and a moving average of the weights. The defaults (all off) are the paper's full
fine-tune."""

from __future__ import annotations

import torch

# Attention projections, as in diffusers' DreamBooth LoRA example.
LORA_UNET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_TEXT_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]
WEIGHT_DECAY = 1e-2


def make_optimizer(params, *, learning_rate: float, use_8bit_adam: bool):
    """AdamW over ``params``; 8-bit AdamW (bitsandbytes) where asked, with a clear error where it
    cannot run."""
    if not use_8bit_adam:
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    if not torch.cuda.is_available():
        raise RuntimeError(
            "dreambooth.use_8bit_adam: bitsandbytes' 8-bit AdamW runs on CUDA GPUs and this job "
            "sees none (torch.cuda.is_available() is False). Set use_8bit_adam: false, or run "
            "the job on a GPU node (lora_rank > 0 also cuts optimizer memory)."
        )
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise RuntimeError(
            "dreambooth.use_8bit_adam needs the bitsandbytes package, which is not installed in "
            f"this environment ({err}). Install it (pip install bitsandbytes) or set "
            "use_8bit_adam: false."
        ) from err
    return bnb.optim.AdamW8bit(params, lr=learning_rate, weight_decay=WEIGHT_DECAY)


def add_lora(model, rank: int, target_modules: list[str]) -> None:
    """Freeze ``model`` and give it trainable rank-``rank`` LoRA adapters (alpha = rank, so the
    update is B A with no extra scale) on ``target_modules``."""
    from peft import LoraConfig, inject_adapter_in_model

    model.requires_grad_(False)
    # peft's own injection works on any torch module (diffusers' UNet, transformers' CLIP)
    # without the libraries' version-gated add_adapter wrappers
    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=target_modules
    )
    inject_adapter_in_model(config, model)


def merge_lora(model) -> None:
    """Fold the LoRA adapters into the weights and drop them, leaving a plain model that saves
    and loads like the base (so the pipeline needs no LoRA code to generate)."""
    from diffusers.utils.peft_utils import recurse_remove_peft_layers
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    recurse_remove_peft_layers(model)
    # save_pretrained would otherwise write the adapter alone
    model._hf_peft_config_loaded = False
    if hasattr(model, "peft_config"):
        del model.peft_config


def trainable_parameters(models) -> list[torch.nn.Parameter]:
    return [p for model in models for p in model.parameters() if p.requires_grad]


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of min-SNR-gamma (Hang et al. 2023): min(SNR, gamma) / SNR for
    epsilon prediction, min(SNR, gamma) / (SNR + 1) for v-prediction."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.minimum(snr, torch.full_like(snr, gamma))
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


def offset_noise(shape, generator: torch.Generator, offset: float) -> torch.Tensor:
    """Gaussian noise plus ``offset`` times a per-(sample, channel) constant, which lets the model
    learn to shift a whole image's mean (an MRI slice is mostly black background)."""
    noise = torch.randn(shape, generator=generator)
    if offset > 0:
        noise = noise + offset * torch.randn((shape[0], shape[1], 1, 1), generator=generator)
    return noise


class WeightAverage:
    """Exponential moving average of ``params`` (float32 copies, on their device: SD 1.5's UNet
    adds 3.4 GB), updated after each optimizer step with decay min(decay, (1 + n) / (10 + n)) at
    update n, from 0, so a short run is not pulled back to the base. That is diffusers' EMAModel
    warm-up, except at the first update, where EMAModel copies the weights (decay 0) and this
    mixes in a tenth of the base. ``state_dict``/``load_state_dict`` let Accelerate checkpoint it
    with the run."""

    def __init__(self, params, decay: float):
        self.params, self.decay, self.updates = list(params), decay, 0
        self.shadow = [p.detach().float().clone() for p in self.params]

    def current_decay(self) -> float:
        n = max(self.updates - 1, 0)  # the update being made, counted from 0
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        for average, param in zip(self.shadow, self.params, strict=True):
            average.lerp_(param.detach().float(), weight)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for average, param in zip(self.shadow, self.params, strict=True):
            param.copy_(average.to(param.dtype))

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for average, saved in zip(self.shadow, state["shadow"], strict=True):
            average.copy_(saved)
