"""The suite's one end-to-end run of the small config (tests/fixtures/config_small.yaml).

Where a SLURM cluster can be started (root and apt, see tests/slurm/cluster_up.sh) the run goes
through it with the repo's own profile, `snakemake --profile slurm`; elsewhere, or with
BRAINMR_SKIP_SLURM=1, it runs locally (`snakemake --cores 2`). Both executors run the same jobs,
so the workflow tests read this one run's results and the SLURM tests its sacct records: the
suite pays for one end-to-end run, not two. The run works on a copy of the workflow in a
temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "slurm"
PROFILE = ROOT / "slurm" / "config.yaml"
CONFIG = "tests/fixtures/config_small.yaml"
VENV_BIN = Path(sys.executable).parent
SLURM_DIR = Path(os.environ.get("BRAINMR_SLURM_DIR", "/tmp/brainmr-slurm"))
PARTITION = os.environ.get("BRAINMR_SLURM_PARTITION", "brainmr")
ACCOUNT = os.environ.get("BRAINMR_SLURM_ACCOUNT", "brainmr")
# What the workflow needs in the copy it runs (results and .snakemake stay out).
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "slurm", "src", "tests/fixtures")
RUN_TIMEOUT_S = 1500


@dataclass(frozen=True)
class SmallRun:
    run_dir: Path
    executor: str  # "slurm" or "local"
    output: str  # Snakemake's stdout + stderr
    start: str  # a time just before the run, for sacct --starttime


def slurm_skip_reason() -> str | None:
    """Why no SLURM cluster can be started here (None: it can)."""
    if os.environ.get("BRAINMR_SKIP_SLURM") == "1":
        return "BRAINMR_SKIP_SLURM=1"
    if os.geteuid() != 0:
        return "needs root: starts slurmctld/slurmd/slurmdbd and installs Debian's slurm packages"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "no apt-get to install SLURM (Debian/Ubuntu only) and no slurmctld installed"
    site_conf = Path("/etc/slurm/slurm.conf")
    if site_conf.exists() and os.path.realpath(site_conf) != str(SLURM_DIR / "etc" / "slurm.conf"):
        return "this machine has its own /etc/slurm/slurm.conf: the test cluster would clash"
    return None


def slurm_env() -> dict[str, str]:
    env = dict(os.environ)
    env["BRAINMR_SLURM_DIR"] = str(SLURM_DIR)
    env["SLURM_CONF"] = str(SLURM_DIR / "etc" / "slurm.conf")
    # Jobs run `python -m snakemake` and the rule scripts from this venv: sbatch exports PATH.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def cluster_is_up() -> bool:
    """Our slurmctld runs (started by hand earlier): then the suite leaves the cluster up."""
    pid_file = SLURM_DIR / "run" / "slurmctld.pid"
    try:
        pid = int(pid_file.read_text())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


def start_cluster() -> None:
    up = subprocess.run(
        ["bash", str(HERE / "cluster_up.sh")],
        env=slurm_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=900,
    )
    if up.returncode != 0:
        raise RuntimeError(f"cluster_up.sh failed ({up.returncode}):\n{up.stderr[-4000:]}")


def stop_cluster() -> None:
    subprocess.run(["bash", str(HERE / "cluster_down.sh")], env=slurm_env(), timeout=300)


def profile_overrides(profile: dict) -> list[str]:
    """The profile's default-resources with the local cluster's partition and account."""
    defaults = dict(profile["default-resources"])
    defaults["slurm_partition"] = PARTITION
    defaults["slurm_account"] = ACCOUNT
    return [f"{name}={value}" for name, value in defaults.items()]


def copy_workflow(run_dir: Path) -> None:
    for part in WORKFLOW_PARTS:
        source, target = ROOT / part, run_dir / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def snakemake_command(executor: str) -> list[str]:
    command = [str(VENV_BIN / "snakemake"), "--configfile", CONFIG, "--cores", "2"]
    if executor == "local":
        return command
    profile = yaml.safe_load(PROFILE.read_text())
    return command + [
        "--profile", "slurm",
        "--default-resources", *profile_overrides(profile),
        # test cluster: a failure is a failure (no retries); poll often
        "--restart-times", "0",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]  # fmt: skip


def run_small_config(run_dir: Path, executor: str, env: dict[str, str]) -> SmallRun:
    """Copy the workflow into ``run_dir`` and run it to the end with ``executor``."""
    if not (ROOT / CONFIG).is_file():
        raise FileNotFoundError(f"{CONFIG} is missing: the end-to-end run uses it")
    copy_workflow(run_dir)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    result = subprocess.run(
        ["nice", "-n", "10", *snakemake_command(executor)],
        cwd=run_dir,
        env=env | {"PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    (run_dir / f"snakemake_{executor}.log").write_text(output)
    if result.returncode != 0:
        raise RuntimeError(
            f"snakemake ({executor}) on {CONFIG} failed ({result.returncode}):\n{output[-6000:]}"
        )
    return SmallRun(run_dir=run_dir, executor=executor, output=output, start=start)


def run_uuid(output: str) -> str:
    """The plugin names every job of one run after the run's uuid."""
    match = re.search(r"SLURM run ID: ([0-9a-f-]{36})", output)
    assert match, "no 'SLURM run ID' in Snakemake's output: did it use the slurm executor?"
    return match.group(1)


def submitted_job_ids(output: str) -> set[str]:
    return set(re.findall(r"has been submitted with SLURM jobid (\d+)", output))


def sacct_jobs(env: dict, start: str, output: str) -> list[dict[str, str]]:
    """The run's SLURM jobs as sacct records them (allocations only, no job steps)."""
    fields = ["JobID", "JobName", "State", "ExitCode", "Elapsed", "AllocTRES", "Comment"]
    command = ["sacct", "-X", "-n", "-P", "--starttime", start, "--name", run_uuid(output)]
    out = subprocess.run(
        [*command, "-o", ",".join(fields)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
