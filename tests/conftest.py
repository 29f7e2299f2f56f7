from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1200):
    """Run the project's Snakefile with ``workdir`` as working directory (its own results/)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "config").exists():
        shutil.copytree(REPO / "config", workdir / "config")
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return proc
