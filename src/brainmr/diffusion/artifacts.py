"""What a finished DreamBooth run leaves: the loss log and its plot, the model card, and the
pipeline folder with the trained UNet (and text encoder)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from brainmr import io
from brainmr.diffusion.batches import InstanceSet
from brainmr.diffusion.config import DreamBoothConfig


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
