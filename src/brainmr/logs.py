"""Logging for workflow jobs: logging, warnings and tqdm (stderr) all go to the job's log."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to(path: str | Path, level: int = logging.INFO) -> None:
    """Send this process's logging and stderr to ``path`` (Snakemake's ``log:`` file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    logging.basicConfig(
        level=level,
        stream=stream,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
