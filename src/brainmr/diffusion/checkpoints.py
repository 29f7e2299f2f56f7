"""Resumable DreamBooth checkpoints on bounded disk: ``step-N`` folders, each written atomically
(a ``.step-N.*`` temporary renamed into place) with a meta.json naming the run it belongs to."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from brainmr import io

log = logging.getLogger(__name__)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The finished checkpoints in ``folder``, oldest first."""
    found = [(int(p.name.split("-")[1]), p) for p in Path(folder).glob("step-*") if p.is_dir()]
    return sorted(found)


def matching_meta(path: Path, identity: dict) -> dict | None:
    """The checkpoint's meta.json when it belongs to the run ``identity`` names, else None."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if all(meta.get(k) == v for k, v in identity.items()) else None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Half-written ``.step-N.*`` folders of a save that was killed; nothing resumes from them."""
    stale = sorted(Path(folder).glob(".step-*"))
    for path in stale:
        log.info("removing a half-written checkpoint: %s", path)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def prune(folder: Path, identity: dict, keep: int) -> None:
    """Remove the checkpoints of other runs (another base, instance set or config: stale for
    this work_dir) and all but the newest ``keep`` of this one."""
    found = [p for _, p in checkpoints(folder)]
    ours = [p for p in found if matching_meta(p, identity) is not None]
    for path in [p for p in found if p not in ours] + ours[: max(len(ours) - keep, 0)]:
        log.info("removing checkpoint %s", path)
        shutil.rmtree(path)


def save_checkpoint(accelerator, folder: Path, step: int, identity: dict, history, limit: int):
    """Write step-N keeping at most ``limit`` checkpoints of this run. The oldest are deleted
    *before* the new one is written (disk peaks at max(limit, 2) checkpoints, not limit + 1),
    but never the last valid one: a save killed half-way still leaves one to resume from."""
    prune(folder, identity, keep=max(limit - 1, 1))
    with io.atomic_dir(Path(folder) / f"step-{step}") as tmp:
        accelerator.save_state(str(tmp))
        io.write_json(Path(tmp) / "meta.json", identity | {"step": step, "history": history})
    prune(folder, identity, keep=limit)


def resume(accelerator, folder: Path, identity: dict, max_steps: int) -> tuple[int, list]:
    """Load the newest checkpoint of this run; (0, []) when there is none."""
    for step, path in reversed(checkpoints(folder)):
        meta = matching_meta(path, identity)
        if meta is not None and step <= max_steps:
            accelerator.load_state(str(path))
            log.info("resuming from %s (step %d)", path, step)
            return step, [list(row) for row in meta["history"]]
    return 0, []
