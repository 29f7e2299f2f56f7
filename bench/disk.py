"""Disk one DreamBooth run needs, measured from the files the workflow's trainer writes.

    python bench/disk.py                  # SD 1.5's architecture (random weights), ~15 GB
    python bench/disk.py --only lora_r4   # SD 1.5 size, the LoRA run alone (~9 GB)
    python bench/disk.py --quick          # the demo base's architecture (tests)

Builds the model from configs (nothing downloaded), runs ``train_dreambooth`` for one step at 64 px
with the checkpoint kept, and sums the sizes of the base folder, one checkpoint and the saved
pipeline; for the default full fine-tune (checkpoint: weights + AdamW state + RNG and schedule),
with the text encoder trained too, and for LoRA rank 4 (checkpoint: the adapters and their AdamW
state; the frozen UNet is the base's). Peak disk of a run = base + pipeline +
checkpoints_total_limit (at least 2 while a new one is written) checkpoints; after the run only
the pipeline stays (keep_checkpoints: false).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from _common import machine, write_json
from diffusion import demo_pipeline, instance_table, sd15_pipeline

from brainmr.config import stage_config
from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig, GenerateConfig
from brainmr.diffusion.dreambooth import train_dreambooth

GB = 1e9
RUNS = {
    "full_finetune": {},
    "full_finetune_text_encoder": {"train_text_encoder": True},
    "lora_r4": {"lora_rank": 4},
}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def measure(base: Path, instances, work: Path, **settings) -> dict:
    run = stage_config(
        DreamBoothRunConfig,
        "dreambooth",
        checkpointing_steps=1,
        keep_checkpoints=True,
        validation_images=1,
    )
    cfg = stage_config(
        DreamBoothConfig,
        "dreambooth",
        max_train_steps=1,
        resolution=64,
        train_batch_size=1,
        **settings,
    )
    gen = stage_config(GenerateConfig, "generate", num_inference_steps=1)
    train_dreambooth(
        base_model=str(base),
        instances=instances,
        pipeline_dir=work / "pipeline",
        work_dir=work,
        cfg=cfg,
        run=run,
        gen_cfg=gen,
        threads=torch.get_num_threads(),
    )
    (checkpoint,) = (work / "checkpoints").glob("step-*")
    files = {p.name: p.stat().st_size for p in checkpoint.iterdir()}
    return {
        "checkpoint_gb": round(folder_bytes(checkpoint) / GB, 3),
        "checkpoint_mb": round(folder_bytes(checkpoint) / 1e6, 1),
        "checkpoint_files_mb": {k: round(v / 1e6, 3) for k, v in sorted(files.items())},
        "pipeline_gb": round(folder_bytes(work / "pipeline") / GB, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo base's size (tests)")
    parser.add_argument(
        "--only", action="append", choices=sorted(RUNS), help="measure this run alone (repeatable)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = {"model": "demo base" if args.quick else "SD 1.5 architecture (random weights)"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pipe, _ = (demo_pipeline if args.quick else sd15_pipeline)(tmp, args.quick)
        pipe.save_pretrained(tmp / "base")
        del pipe
        figures["base_gb"] = round(folder_bytes(tmp / "base") / GB, 3)
        instances = instance_table(tmp, 2)
        for name in args.only or RUNS:
            figures[name] = measure(tmp / "base", instances, tmp / name, **RUNS[name])
            peak = figures["base_gb"] + figures[name]["pipeline_gb"]
            figures[name]["peak_gb_limit_1"] = round(peak + 2 * figures[name]["checkpoint_gb"], 2)
            figures[name]["after_run_gb"] = figures[name]["pipeline_gb"]
            print(f"{name}: {json.dumps(figures[name])}", flush=True)
    print(f"base folder: {figures['base_gb']} GB; machine: {machine()}")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
