"""Benchmark of the diffusion stage on one model, in one run:
DreamBooth steps/s with and without cached latents + prompt embeddings, and generation images/s
batched versus one image per call.

    python bench/diffusion.py [--json results/bench/diffusion.json] [--threads 2]
    python bench/diffusion.py --sd15   # random-weight SD 1.5-size model at 512 px, CUDA + bf16

Default model: the demo base architecture (demo config sizes, untrained: speed does not depend
on the weights) at 64 px, batch 8, float32 on CPU."""

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
import torch

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion import DemoBaseConfig, DreamBoothConfig, build_demo_base
from brainmr.diffusion import dreambooth as db
from brainmr.diffusion.common import cpu_generator, slices_to_pixels
from brainmr.diffusion.demo_base import build_tokenizer
from brainmr.diffusion.generate import make_scheduler, sample_images

PROMPTS = ["AD, a MRI brain, ADNI2", "CN, a MRI brain, ADNI2"]


def demo_pipeline(workdir: Path):
    from diffusers import StableDiffusionPipeline

    cfg = stage_config(DemoBaseConfig, "demo_base", resolution=64)
    build_demo_base(workdir / "base", cfg=cfg)
    return StableDiffusionPipeline.from_pretrained(str(workdir / "base")), 64


def sd15_pipeline(workdir: Path):
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


def training_run(pipe, *, resolution, batch, steps, cached, device, dtype):
    """A callable doing ``steps`` optimizer steps of the DreamBooth loop (UNet trained,
    VAE/text frozen), with or without cached latents + prompt embeddings; warmed up."""
    from diffusers import DDPMScheduler

    unet = pipe.unet.to(device).train()
    for frozen in (pipe.vae, pipe.text_encoder):
        frozen.to(device)
        if dtype != torch.float32:
            frozen.to(dtype)
    rng = np.random.default_rng(0)
    slices = rng.random((max(16, batch), 160, 160), dtype=np.float32)
    inputs = db.TrainingInputs(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        pixels=slices_to_pixels(slices, resolution),
        prompts=[PROMPTS[i % 2] for i in range(len(slices))],
        cache_latents=cached,
        train_text=False,
    )
    cfg = stage_config(DreamBoothConfig, "dreambooth", resolution=resolution)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-6)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    sizes = dict(n_items=len(slices), batch_size=batch, accumulation=1, seed=0)

    def run(n_steps: int = steps) -> None:
        for step in range(n_steps):
            idx = torch.from_numpy(db.batch_indices(step, 0, **sizes))
            with autocast:
                loss = db.micro_step_loss(
                    unet, inputs, sched, idx, batch, cpu_generator(0, step), cfg
                )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    run(3)  # warm-up: allocator, kernels
    return run


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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sd15 and not torch.cuda.is_available():
        print("--sd15: no CUDA GPU here; skipped (an SD 1.5-size model at 512 px needs one)")
        return 0
    device = torch.device("cuda" if args.sd15 else "cpu")
    dtype = torch.bfloat16 if args.sd15 else torch.float32
    if args.sd15:
        plan = dict(
            train_batch=4, train_steps=10, gen_images=16, gen_batch=8, gen_single=4, rounds=2
        )
    else:
        plan = dict(
            train_batch=8, train_steps=20, gen_images=16, gen_batch=16, gen_single=4, rounds=3
        )
    with tempfile.TemporaryDirectory() as tmp:
        pipe, resolution = (sd15_pipeline if args.sd15 else demo_pipeline)(Path(tmp))
    attention = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
    kw = dict(resolution=resolution, batch=plan["train_batch"], steps=plan["train_steps"])
    train = best_rates(
        {
            "cached": (
                training_run(pipe, cached=True, device=device, dtype=dtype, **kw),
                kw["steps"],
            ),
            "uncached": (
                training_run(pipe, cached=False, device=device, dtype=dtype, **kw),
                kw["steps"],
            ),
        },
        plan["rounds"],
        device,
    )
    gen = dict(steps=25, device=device, dtype=dtype)
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
    # the schedulers users pick from: DPM-Solver++ at 25 steps (our default) vs DDIM / PNDM at 50
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
            for name, steps in [("dpmsolver++", 25), ("ddim", 50), ("pndm", 50)]
        },
        plan["rounds"],
        device,
    )
    cached, uncached, batched, single = (
        train["cached"],
        train["uncached"],
        sample["batched"],
        sample["single"],
    )
    figures = {
        "model": "sd15-size random weights" if args.sd15 else "demo base (untrained)",
        "resolution": resolution,
        "device": torch.cuda.get_device_name() if args.sd15 else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "attention": attention,
        "dreambooth": {
            "batch_size": plan["train_batch"],
            "rounds_best_of": plan["rounds"],
            "cached_steps_per_s": round(cached, 3),
            "uncached_steps_per_s": round(uncached, 3),
            "cached_over_uncached": round(cached / uncached, 2),
        },
        "generation": {
            "inference_steps": 25,
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
