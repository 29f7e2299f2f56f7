"""The tiny diffusion set-up the unit tests build in process (CPU, seconds): one home for the demo
base's sizes, the blob slices trained on, DreamBooth's test settings and a kill switch that stops
a run right after a checkpoint (the shared fixtures, ``tiny_base`` and ``tiny_instances``, are
in conftest.py)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

TINY_BASE = dict(
    resolution=32,
    vae_channels=[8, 16],
    latent_channels=4,
    unet_channels=[16, 32],
    text_hidden=32,
    text_layers=1,
    corpus_size=16,
    vae_steps=2,
    unet_steps=2,
    batch_size=4,
)

AD_PROMPT = "AD, a MRI brain, ADNI2"
CN_PROMPT = "CN, a MRI brain, ADNI2"
DREAMBOOTH_TEST = dict(resolution=32, max_train_steps=3, train_batch_size=2, learning_rate=1e-3)
RUN_TEST = dict(checkpointing_steps=2, validation_steps=0, validation_images=1)
GEN_TEST = dict(num_inference_steps=2)


def blob(radius: float, size: int = 160) -> np.ndarray:
    """A centred Gaussian blob, a stand-in for a brain slice: (size, size) float32 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = size // 2
    return np.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * radius**2)).astype(np.float32)


def write_blob_slices(folder: Path, rows: list[dict]) -> pd.DataFrame:
    """One .npy blob slice per row (keys subject, group, radius, and any more columns) in
    ``folder``: the rows with a ``path`` column instead of ``radius``."""
    from brainmr import io

    folder.mkdir(parents=True, exist_ok=True)
    table = []
    for row in rows:
        path = folder / f"{row['subject']}.npy"
        io.save_npy(path, blob(row["radius"]))
        table.append({"path": str(path)} | {k: v for k, v in row.items() if k != "radius"})
    return pd.DataFrame(table)


def dreambooth_kwargs(overrides: dict) -> dict:
    return DREAMBOOTH_TEST | overrides


def dreambooth_cfg(**overrides):
    from brainmr.config import stage_config
    from brainmr.diffusion.config import DreamBoothConfig

    return stage_config(DreamBoothConfig, "dreambooth", **dreambooth_kwargs(overrides))


def run_cfg(**overrides):
    from brainmr.config import stage_config
    from brainmr.diffusion.config import DreamBoothRunConfig

    return stage_config(DreamBoothRunConfig, "dreambooth", **(RUN_TEST | overrides))


def train(*, run=None, **kw) -> None:
    """train_dreambooth with the tests' checkpoint and validation settings (2-step sampling)."""
    from brainmr.config import stage_config
    from brainmr.diffusion.config import GenerateConfig
    from brainmr.diffusion.dreambooth import train_dreambooth

    gen_cfg = stage_config(GenerateConfig, "generate", **GEN_TEST)
    train_dreambooth(run=run or run_cfg(), gen_cfg=gen_cfg, **kw)


@contextmanager
def killed_after_checkpoint(step: int | None = None):
    """Within the block a run dies (KeyboardInterrupt) right after writing checkpoint ``step``
    (the first it writes where None), as a job killed by SLURM between two saves."""
    from brainmr.diffusion import checkpoints as ckpt

    save = ckpt.save_checkpoint

    def save_then_die(accelerator, folder, at, *args):
        save(accelerator, folder, at, *args)
        if step is None or at == step:
            raise KeyboardInterrupt(f"killed after checkpoint {at}")

    ckpt.save_checkpoint = save_then_die
    try:
        yield
    finally:
        ckpt.save_checkpoint = save


def unet_weights(pipeline_dir: Path):
    """The UNet's parameters of a saved pipeline, flattened into one tensor."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline_dir))
    return torch.cat([p.flatten() for p in pipe.unet.parameters()])
