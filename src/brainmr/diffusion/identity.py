"""What a DreamBooth run *is*, so that nothing is resumed or reused across a change: the base
model by content (not by path), and the settings that change training."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

# Files of a diffusers folder read whole (small); anything else is a weights file, sampled.
TEXT_SUFFIXES = (".json", ".txt", ".model", ".md", ".yaml")
SAMPLE_BLOCK = 1 << 16  # 64 KiB
SAMPLE_BLOCKS = 16
EDGE_BYTES = 1 << 20  # the first and last MiB (a safetensors header and its first tensors)


def _file_digest(path: Path, digest) -> None:
    size = path.stat().st_size
    digest.update(f"{size}\0".encode())
    with open(path, "rb") as fh:
        if path.suffix in TEXT_SUFFIXES or size <= 2 * EDGE_BYTES + SAMPLE_BLOCK * SAMPLE_BLOCKS:
            digest.update(fh.read())
            return
        # Weights: the edges and evenly spaced blocks. Retraining or replacing a weights file
        # changes every block, so about 3 MB read per file identifies an SD 1.5 folder in
        # well under a second where a full hash would read 4-5 GB.
        digest.update(fh.read(EDGE_BYTES))
        for k in range(SAMPLE_BLOCKS):
            fh.seek(EDGE_BYTES + k * (size - 2 * EDGE_BYTES) // SAMPLE_BLOCKS)
            digest.update(fh.read(SAMPLE_BLOCK))
        fh.seek(size - EDGE_BYTES)
        digest.update(fh.read(EDGE_BYTES))


def base_model_digest(base_model: str | Path) -> str:
    """sha256 of a local base model folder's contents: every file's relative path and size, the
    configs, tokenizer and scheduler files whole, each weights file by its edges and 16 sampled
    blocks. Where the folder lives and its files' times do not count, so a copied or moved base
    resumes; a rebuilt or replaced one never does. A hub id (not a local folder) digests as its
    name."""
    root = Path(base_model)
    digest = hashlib.sha256()
    if not root.is_dir():
        digest.update(f"hub:{base_model}".encode())
        return digest.hexdigest()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"base model {base_model}: the folder is empty")
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        _file_digest(path, digest)
    return digest.hexdigest()


def config_digest(cfg, base_digest: str) -> str:
    """What a checkpoint must match to be resumed: every setting that changes training (the
    config dataclass holds only those) and the base model's content digest."""
    settings = dataclasses.asdict(cfg) | {"base_model": base_digest}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
