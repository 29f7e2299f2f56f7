"""What DreamBooth optimizes and how: the trained parameters, AdamW (8-bit with bitsandbytes
where asked) with a learning rate per model, and the optional moving average of the weights
(diffusers' EMAModel)."""

from __future__ import annotations

import torch

from brainmr.diffusion.config import DreamBoothConfig

WEIGHT_DECAY = 1e-2


def trainable_parameters(models) -> list[torch.nn.Parameter]:
    return [p for model in models for p in model.parameters() if p.requires_grad]


def parameter_groups(trained: list, cfg: DreamBoothConfig) -> list[dict]:
    """The optimizer's parameter groups: the UNet at ``learning_rate``; the text encoder (second
    of ``trained`` where it is trained) at ``text_encoder_learning_rate`` where set."""
    groups = [{"params": trainable_parameters(trained[:1]), "lr": cfg.learning_rate}]
    if len(trained) > 1:
        lr = cfg.text_encoder_learning_rate or cfg.learning_rate
        groups.append({"params": trainable_parameters(trained[1:]), "lr": lr})
    return groups


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


def weight_average(params, decay: float):
    """diffusers' EMAModel of ``params`` (a copy of each, on its device: SD 1.5's UNet adds 3.4
    GB), or None where ``decay`` is 0 (off). Stepped after each optimizer step, its decay at
    step k (from 1) is 0 at k = 1 (the average starts as the trained weights, so a short run is
    not pulled back to the base), then min(decay, (1 + n) / (10 + n)) with n = k - 1. Its
    ``state_dict``/``load_state_dict`` let Accelerate checkpoint it with the run."""
    if decay <= 0:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(params, decay=decay)
