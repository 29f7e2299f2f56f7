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


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: int = 1200,
    snakefile: Path | None = None,
):
    """Run the project's Snakefile (or ``snakefile``, a copy's) with ``workdir`` as working
    directory (its own results/)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "config").exists():
        shutil.copytree(REPO / "config", workdir / "config")
    cmd = [SNAKEMAKE, "-s", str(snakefile or REPO / "Snakefile"), "-d", str(workdir), *args]
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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The suite's one end-to-end run of the small config: through a local SLURM cluster where
    one can be started, else locally (tests/small_run.py)."""
    import small_run as e2e

    run_dir = tmp_path_factory.mktemp("small_run")
    if e2e.slurm_skip_reason() is not None:
        yield e2e.run_small_config(run_dir, "local", dict(os.environ))
        return
    was_up = e2e.cluster_is_up()
    try:
        e2e.start_cluster()
        run = e2e.run_small_config(run_dir, "slurm", e2e.slurm_env())
        # sacct's view, kept beside the run for a person to read (the cluster goes down after)
        jobs = e2e.sacct_jobs(e2e.slurm_env(), run.start, run.output)
        lines = ["\t".join(jobs[0])] + ["\t".join(job.values()) for job in jobs] if jobs else []
        (run_dir / "sacct.tsv").write_text("\n".join(lines) + "\n")
        yield run
    finally:
        if not was_up:
            e2e.stop_cluster()
