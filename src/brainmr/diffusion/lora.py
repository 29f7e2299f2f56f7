"""LoRA adapters (peft) for DreamBooth: injected into the UNet's (and the text encoder's)
attention projections, checkpointed alone (the frozen weights are the base's, read again on
resume), and merged back into plain weights for the saved pipeline."""

from __future__ import annotations

from pathlib import Path

# Attention projections, as in diffusers' DreamBooth LoRA example.
LORA_UNET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
LORA_TEXT_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]


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


def has_lora(model) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(module, BaseTunerLayer) for module in model.modules())


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


def adapter_file(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}_lora.safetensors"


def checkpoint_adapters_only(accelerator, adapted: dict) -> None:
    """Make ``accelerator.save_state``/``load_state`` write and read only the LoRA weights of the
    ``adapted`` models (name -> model, as prepared), one ``<name>_lora.safetensors`` each, as
    diffusers' DreamBooth LoRA example does: their frozen weights (3.44 GB of SD 1.5's UNet)
    are the base's, loaded again on resume. Other prepared models (a fully trained text
    encoder) keep Accelerate's own files."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    def adapter_name(model) -> str | None:
        model = accelerator.unwrap_model(model)
        return next((n for n, m in adapted.items() if accelerator.unwrap_model(m) is model), None)

    def save(models, weights, output_dir) -> None:
        # weights[i] is models[i]'s state dict; an adapted model's leaves the list unwritten
        for i in reversed(range(len(models))):
            name = adapter_name(models[i])
            if name is None:
                continue
            state = get_peft_model_state_dict(accelerator.unwrap_model(models[i]))
            tensors = {k: v.detach().contiguous() for k, v in state.items()}
            if accelerator.is_main_process:
                save_file(tensors, str(adapter_file(output_dir, name)))
            weights.pop(i)

    def load(models, input_dir) -> None:
        for i in reversed(range(len(models))):
            name = adapter_name(models[i])
            if name is None:
                continue
            model = accelerator.unwrap_model(models.pop(i))
            state = load_file(str(adapter_file(input_dir, name)))
            result = set_peft_model_state_dict(model, state)
            unfit = list(result.unexpected_keys) + [k for k in result.missing_keys if "lora_" in k]
            if unfit:
                raise ValueError(f"{input_dir}: {name} adapters do not fit the model: {unfit[:3]}")

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)
