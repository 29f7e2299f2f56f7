"""Benchmark of the diffusion stage on one model, in one run:
DreamBooth steps/s of the workflow's own trainer (``train_dreambooth``) with and without cached
latents + prompt embeddings (on a GPU also with 8-bit AdamW and LoRA), and generation images/s
batched versus one image per call.

    python bench/diffusion.py [--json results/bench/diffusion.json] [--threads 2]
    python bench/diffusion.py --sd15   # random-weight SD 1.5-size model at 512 px, CUDA + bf16
    python bench/diffusion.py --quick  # tiny model, a few steps: does every part run

Default model: the demo base architecture (demo config sizes, untrained: speed does not depend
on the weights) at 64 px, batch 16, float32 on CPU."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion.config import (
    DemoBaseConfig,
    DreamBoothConfig,
    DreamBoothRunConfig,
    GenerateConfig,
)
from brainmr.diffusion.demo_base import build_demo_base, build_tokenizer
from brainmr.diffusion.dreambooth import train_dreambooth
from brainmr.diffusion.generate import make_scheduler, sample_images

PROMPTS = ["AD, a MRI brain, ADNI2", "CN, a MRI brain, ADNI2"]
# the schedulers users pick from: DPM-Solver++ at 25 steps (our default) vs DDIM / PNDM at 50
SCHEDULER_STEPS = [("dpmsolver++", 25), ("ddim", 50), ("pndm", 50)]


def demo_pipeline(workdir: Path, quick: bool = False):
    from diffusers import StableDiffusionPipeline

    tiny = dict(vae_channels=[8, 16], unet_channels=[16, 32], text_hidden=32, text_layers=1)
    cfg = stage_config(DemoBaseConfig, "demo_base", resolution=64, **(tiny if quick else {}))
    build_demo_base(workdir / "base", cfg=cfg)
    return StableDiffusionPipeline.from_pretrained(str(workdir / "base")), 64


def sd15_pipeline(workdir: Path, quick: bool = False):
    """SD 1.5's architecture from configs written here (random weights, nothing downloaded)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from brainmr.diffusion.demo_base import assemble_pipeline

    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    tokenizer = build_tokenizer(workdir / "tokenizer")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    pipe = assemble_pipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet)
    return pipe, 512


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_rates(runs: dict, rounds: int, device) -> dict[str, float]:
    """Alternate the variants for ``rounds`` rounds and keep each one's best rate (items per
    second): the machine is shared, and the best round is the least disturbed one."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, (run, items) in runs.items():
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            best[name] = max(best[name], items / (time.perf_counter() - start))
    return best


def instance_table(folder: Path, n: int) -> pd.DataFrame:
    """``n`` random 160 x 160 slices (speed does not depend on the pixels), half per class."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"slice{i}.npy"
        io.save_npy(path, rng.random((160, 160), dtype=np.float32))
        group = ("AD", "CN")[i % 2]
        rows.append(
            {"path": str(path), "group": group, "prompt": PROMPTS[i % 2], "subject": f"S{i}"}
        )
    return pd.DataFrame(rows)


def time_trainer(base: Path, instances, workdir: Path, *, steps: int, **settings) -> dict:
    """Seconds of the workflow's own ``train_dreambooth`` (Accelerate, checkpoints, validation
    off but the final grid) for 1 and for ``steps`` steps; the difference gives steps/s without
    the fixed cost of loading and saving. The 1-step run is done twice and the faster counts:
    the first run in a process pays one-time costs (CUDA context, kernel selection) that would
    otherwise land in the 1-step time only."""
    from brainmr.config import stage_config

    run = stage_config(
        DreamBoothRunConfig, "dreambooth", checkpointing_steps=10**6, validation_images=1
    )
    gen = stage_config(GenerateConfig, "generate", num_inference_steps=2)
    seconds: dict[int, list[float]] = {1: [], steps: []}
    for i, n in enumerate((1, 1, steps)):
        cfg = stage_config(DreamBoothConfig, "dreambooth", max_train_steps=n, **settings)
        out = workdir / f"run{i}"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        train_dreambooth(
            base_model=str(base),
            instances=instances,
            pipeline_dir=out / "pipeline",
            work_dir=out,
            cfg=cfg,
            run=run,
            gen_cfg=gen,
            threads=torch.get_num_threads(),
        )
        seconds[n].append(time.perf_counter() - start)
    # the faster of the two 1-step runs: the first still pays some one-time costs
    fixed = min(seconds[1])
    extra = seconds[steps][0] - fixed
    return {
        "fixed_s": round(fixed, 2),
        # no figure where the extra steps took no measurable time (too few steps to time)
        "steps_per_s": round((steps - 1) / extra, 3) if extra > 0 else None,
        "peak_gpu_mb": (
            round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None
        ),
    }


def generation_run(pipe, *, n_images, batch, steps, device, dtype, scheduler="dpmsolver++"):
    """A callable generating ``n_images`` with ``batch`` images per pipeline call (guidance on,
    DPM-Solver++ unless told); warmed up."""
    pipe = pipe.to(device) if dtype == torch.float32 else pipe.to(device, dtype)
    pipe.unet.eval()
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(prompt=PROMPTS[0], num_inference_steps=steps, guidance_scale=3.0)

    def run() -> None:
        for first in range(0, n_images, batch):
            sample_images(pipe, seeds=list(range(first, min(first + batch, n_images))), **kw)

    sample_images(pipe, seeds=list(range(batch)), **kw)  # warm-up
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--sd15", action="store_true", help="SD 1.5-size model, 512 px, CUDA bf16")
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps (tests)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sd15 and not torch.cuda.is_available():
        print("--sd15: no CUDA GPU here; skipped (an SD 1.5-size model at 512 px needs one)")
        return 0
    device = torch.device("cuda" if args.sd15 else "cpu")
    dtype = torch.bfloat16 if args.sd15 else torch.float32
    if args.sd15:
        plan = dict(train_batch=4, train_steps=30, gen_images=16, gen_batch=8, gen_single=4)
        plan |= dict(rounds=2, gen_steps=25)
    elif args.quick:  # does every part run (tests): a tiny model, a few steps
        # 20 timed steps: with fewer, the noise of the fixed cost (saving, the validation
        # grid) can exceed the steps' own time and leave no steps/s figure
        plan = dict(train_batch=2, train_steps=21, gen_images=2, gen_batch=2, gen_single=1)
        plan |= dict(rounds=1, gen_steps=2)
    else:
        plan = dict(train_batch=16, train_steps=20, gen_images=16, gen_batch=16, gen_single=4)
        plan |= dict(rounds=3, gen_steps=25)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pipe, resolution = (sd15_pipeline if args.sd15 else demo_pipeline)(tmp, args.quick)
        pipe.save_pretrained(tmp / "base")  # the trainer reads its base from a folder
        instances = instance_table(tmp, 2 * plan["train_batch"])
        common = dict(resolution=resolution, train_batch_size=plan["train_batch"])
        if args.sd15:
            common |= dict(mixed_precision="bf16", gradient_checkpointing=True)
        variants = {"cached": {}, "uncached": {"cache_latents": False}}
        if args.sd15:  # the memory options, each on top of bf16
            variants |= {"8bit_adam": {"use_8bit_adam": True}, "lora_r4": {"lora_rank": 4}}
        train = {}
        for name, extra in variants.items():
            try:
                train[name] = time_trainer(
                    tmp / "base",
                    instances,
                    tmp / name,
                    steps=plan["train_steps"],
                    **common,
                    **extra,
                )
            except (RuntimeError, ImportError) as err:  # e.g. no bitsandbytes on this machine
                train[name] = {"error": str(err)[:300]}
            print(f"train_dreambooth [{name}]: {train[name]}", flush=True)
    attention = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
    gen = dict(steps=plan["gen_steps"], device=device, dtype=dtype)
    n_batched, n_single = plan["gen_images"], plan["gen_single"]
    sample = best_rates(
        {
            "batched": (
                generation_run(pipe, n_images=n_batched, batch=plan["gen_batch"], **gen),
                n_batched,
            ),
            "single": (generation_run(pipe, n_images=n_single, batch=1, **gen), n_single),
        },
        plan["rounds"],
        device,
    )
    schedulers = best_rates(
        {
            f"{name}_{steps}": (
                generation_run(
                    pipe,
                    n_images=n_batched,
                    batch=plan["gen_batch"],
                    steps=steps,
                    device=device,
                    dtype=dtype,
                    scheduler=name,
                ),
                n_batched,
            )
            for name, steps in SCHEDULER_STEPS[: 1 if args.quick else None]
        },
        plan["rounds"],
        device,
    )
    batched, single = sample["batched"], sample["single"]
    figures = {
        "model": "sd15-size random weights" if args.sd15 else "demo base (untrained)",
        "resolution": resolution,
        "device": torch.cuda.get_device_name() if args.sd15 else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "attention": attention,
        "dreambooth": {
            "trainer": "brainmr.diffusion.dreambooth.train_dreambooth",
            "batch_size": plan["train_batch"],
            "steps_timed": plan["train_steps"],
            **train,
        },
        "generation": {
            "inference_steps": plan["gen_steps"],
            "batch_size": plan["gen_batch"],
            "batched_images_per_s": round(batched, 3),
            "one_per_call_images_per_s": round(single, 3),
            "batched_over_one_per_call": round(batched / single, 2),
            "schedulers_images_per_s": {k: round(v, 3) for k, v in schedulers.items()},
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_gpu_mb": (
            round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None
        ),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        io.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
