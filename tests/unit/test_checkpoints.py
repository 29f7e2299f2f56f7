"""brainmr.diffusion.checkpoints: resumable runs. A run killed after a checkpoint (or by
SIGKILL) resumes with the data order and losses of an unkilled one; checkpoints are pruned
before a new one is written; a changed base model is never resumed."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tiny import (
    GEN_TEST,
    RUN_TEST,
    TINY_BASE,
    dreambooth_cfg,
    dreambooth_kwargs,
    killed_after_checkpoint,
    run_cfg,
    train,
)

from brainmr import io
from brainmr.config import stage_config
from brainmr.diffusion import checkpoints as ckpt
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_base import build_demo_base
from brainmr.diffusion.identity import base_model_digest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batches_logged(records) -> dict[int, str]:
    found = {}
    for r in records:
        m = re.match(r"step (\d+) micro 0 batch (.*)", r.getMessage())
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def test_killed_run_resumes_from_checkpoint_with_same_data_order(
    tmp_path, tiny_base, tiny_instances, caplog
):
    cfg = dreambooth_cfg(max_train_steps=6, train_batch_size=3)  # 8 items: batches cross epochs
    kw = dict(base_model=str(tiny_base), instances=tiny_instances, cfg=cfg)
    caplog.set_level(logging.DEBUG, logger="brainmr.diffusion")
    train(pipeline_dir=tmp_path / "a", work_dir=tmp_path / "work_a", **kw)
    reference = _batches_logged(caplog.records)
    expected = pd.read_csv(tmp_path / "work_a" / "loss.tsv", sep="\t")
    assert not (tmp_path / "work_a" / "checkpoints").exists()  # removed once the model is saved

    keep_two = run_cfg(checkpoints_total_limit=2, keep_checkpoints=True)
    with killed_after_checkpoint(4), pytest.raises(KeyboardInterrupt):
        train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", run=keep_two, **kw)
    assert not (tmp_path / "b").exists()
    checkpoints = tmp_path / "work_b" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2", "step-4"]
    (checkpoints / ".step-6.half-written").mkdir()  # a save killed half-way

    caplog.clear()
    train(pipeline_dir=tmp_path / "b", work_dir=tmp_path / "work_b", run=keep_two, **kw)
    assert "step 4" in caplog.text and "resuming" in caplog.text
    resumed = _batches_logged(caplog.records)
    assert sorted(resumed) == [5, 6]  # steps 1-4 were not redone
    assert all(resumed[s] == reference[s] for s in resumed)
    got = pd.read_csv(tmp_path / "work_b" / "loss.tsv", sep="\t")
    assert got.step.tolist() == list(range(1, 7))
    np.testing.assert_allclose(got.loss, expected.loss, rtol=1e-4)  # same batches, noise, weights
    # the limit holds, the half-written folder is gone, kept checkpoints stay after the save
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-4", "step-6"]
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "b"))


class _RecordingAccelerator:
    """Stands in for Accelerate: records which checkpoints exist while a new one is written."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def save_state(self, path):
        self.seen.append(sorted(p.name for p in self.folder.glob("step-*")))
        (Path(path) / "model.safetensors").write_bytes(b"x")


@pytest.mark.parametrize(
    ("limit", "during", "after"),
    [
        (1, ["step-4"], ["step-6"]),
        (2, ["step-4"], ["step-4", "step-6"]),
        (3, ["step-2", "step-4"], ["step-2", "step-4", "step-6"]),
    ],
)
def test_checkpoints_are_pruned_before_a_new_one_is_written(tmp_path, limit, during, after):
    identity = {"instances": "a", "config": "b"}
    accelerator = _RecordingAccelerator(tmp_path)
    other_run = tmp_path / "step-1"
    other_run.mkdir()
    io.write_json(other_run / "meta.json", {"instances": "other", "config": "b", "step": 1})
    for step in (2, 4):
        with io.atomic_dir(tmp_path / f"step-{step}") as tmp:
            io.write_json(Path(tmp) / "meta.json", identity | {"step": step, "history": []})
    ckpt.save_checkpoint(accelerator, tmp_path, 6, identity, [], limit)
    # the oldest went first (and another run's at once), never the last valid one
    assert accelerator.seen == [during]
    assert sorted(p.name for p in tmp_path.glob("step-*")) == after


def test_changed_base_model_is_never_resumed(tmp_path, tiny_instances, caplog):
    """Rebuilding the base at the same path (as a changed demo_base does) retrains from step 0
    and renews the class images, instead of pairing an old UNet with the new VAE."""
    base = tmp_path / "base"
    build_demo_base(base, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE))
    digest = base_model_digest(base)
    shutil.copytree(base, tmp_path / "copy")
    assert base_model_digest(tmp_path / "copy") == digest  # where it lives does not count
    cfg = dreambooth_cfg(max_train_steps=2, with_prior_preservation=True, num_class_images=2)
    kw = dict(instances=tiny_instances, cfg=cfg, work_dir=tmp_path / "work")
    keep = run_cfg(keep_checkpoints=True)
    train(base_model=str(base), pipeline_dir=tmp_path / "first", run=keep, **kw)
    stamp = tmp_path / "work" / "class_images" / "class_images.json"
    assert json.loads(stamp.read_text())["base_model"] == digest

    shutil.rmtree(base)
    build_demo_base(base, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, seed=1))
    assert base_model_digest(base) != digest
    caplog.set_level(logging.INFO, logger="brainmr.diffusion")
    train(base_model=str(base), pipeline_dir=tmp_path / "second", run=keep, **kw)
    assert "resuming" not in caplog.text
    assert json.loads(stamp.read_text())["base_model"] == base_model_digest(base)
    first = StableDiffusionPipeline.from_pretrained(str(tmp_path / "first"))
    second = StableDiffusionPipeline.from_pretrained(str(tmp_path / "second"))
    new_base = StableDiffusionPipeline.from_pretrained(str(base))
    assert not torch.equal(first.unet.conv_in.weight, second.unet.conv_in.weight)
    # the second model is the new base fine-tuned: close to it, far from the first
    near = (second.unet.conv_in.weight - new_base.unet.conv_in.weight).abs().max()
    far = (second.unet.conv_in.weight - first.unet.conv_in.weight).abs().max()
    assert near < far


def test_sigkilled_training_process_resumes(tmp_path, tiny_base, tiny_instances, caplog):
    """A training process killed with SIGKILL (as SLURM or a user would) resumes from its last
    checkpoint on rerun instead of starting over."""
    tiny_instances.to_csv(tmp_path / "instances.tsv", sep="\t", index=False)
    settings = dict(max_train_steps=60, train_batch_size=2)
    run = dict(RUN_TEST, checkpointing_steps=3)
    script = tmp_path / "train.py"
    script.write_text(
        "import pandas as pd, torch\n"
        "from brainmr.config import stage_config\n"
        "from brainmr.diffusion.config import DreamBoothConfig, DreamBoothRunConfig\n"
        "from brainmr.diffusion.config import GenerateConfig\n"
        "from brainmr.diffusion.dreambooth import train_dreambooth\n"
        "torch.set_num_threads(1)\n"
        f"cfg = stage_config(DreamBoothConfig, 'dreambooth', **{dreambooth_kwargs(settings)!r})\n"
        f"run = stage_config(DreamBoothRunConfig, 'dreambooth', **{run!r})\n"
        f"gen = stage_config(GenerateConfig, 'generate', **{GEN_TEST!r})\n"
        f"train_dreambooth(base_model={str(tiny_base)!r},\n"
        f"    instances=pd.read_csv({str(tmp_path / 'instances.tsv')!r}, sep='\\t'),\n"
        f"    pipeline_dir={str(tmp_path / 'model')!r}, work_dir={str(tmp_path / 'work')!r},\n"
        "    cfg=cfg, run=run, gen_cfg=gen)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "work" / "checkpoints"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(checkpoints.glob("step-*")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = [int(p.name.split("-")[1]) for p in checkpoints.glob("step-*")]
    assert saved, "no checkpoint was written before the kill"
    assert not (tmp_path / "model").exists()  # the pipeline is only written at the end

    caplog.set_level(logging.INFO, logger="brainmr.diffusion")
    train(
        base_model=str(tiny_base),
        instances=tiny_instances,
        pipeline_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
        cfg=dreambooth_cfg(**settings),
        run=run_cfg(**run),
    )
    resumed = int(re.search(r"resuming from .*\(step (\d+)\)", caplog.text).group(1))
    assert resumed >= min(saved) >= 3
    loss = pd.read_csv(tmp_path / "work" / "loss.tsv", sep="\t")
    assert loss.step.tolist() == list(range(1, 61))
    StableDiffusionPipeline.from_pretrained(str(tmp_path / "model"))
