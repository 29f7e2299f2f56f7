from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
E2E = "e2e"  # the marker of the tests that read the shared end-to-end run (small_run)


def pytest_collection_modifyitems(config, items):
    """Every test that reads the shared end-to-end run (the small_run fixture, directly or
    through another fixture) is marked e2e: `make test` runs those in one session, so the run
    happens once, beside a second session with the rest of the suite."""
    for item in items:
        if "small_run" in getattr(item, "fixturenames", ()):
            item.add_marker(getattr(pytest.mark, E2E))


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


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """The evaluation and report chain on toy data, two replicate seeds (tests/toy_run.py), built
    once for every test of brainmr.report: the paths of its inputs and outputs."""
    import toy_run as chain

    return chain.build(tmp_path_factory.mktemp("toy_run"))


@pytest.fixture(scope="session")
def toy_split(tmp_path_factory):
    """Toy train (20 per class) and held-out (15 per class) slices on disk, shared by the tests
    of brainmr.evaluate (KDE, outliers, scoring): {"root", "train", "test"}."""
    import pandas as pd
    from toy_evaluation import write_slices

    from brainmr.evaluate.toy import toy_slices

    root = tmp_path_factory.mktemp("toy")
    train, test = (
        pd.concat(
            [
                write_slices(root, toy_slices("AD", n, seed=seeds[0]), "AD", prefix),
                write_slices(root, toy_slices("CN", n, seed=seeds[1]), "CN", prefix),
            ],
            ignore_index=True,
        )
        for prefix, n, seeds in (("train", 20, (1, 2)), ("test", 15, (3, 4)))
    )
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="session")
def kde_files(toy_split):
    """The KDE fitted on toy_split's training slices (default config): (model, summary JSON)."""
    from toy_evaluation import kde_config

    from brainmr.evaluate.judges.kde import fit_kde

    out_model, out_json = toy_split["root"] / "kde.joblib", toy_split["root"] / "kde.json"
    fit_kde(train=toy_split["train"], out_model=out_model, out_json=out_json, cfg=kde_config())
    return out_model, out_json


# ----------------------------------------------------------------------------- tiny diffusion
@pytest.fixture
def one_torch_thread():
    """torch at one thread for the tests of brainmr.diffusion (`pytestmark`), as their trainer
    and generator calls set with brainmr.threads.limit_threads (threads=1, the default): the tiny
    models gain nothing from a second thread, and on a busy 2-core machine two threads per job
    made a training test 10x slower (23-32 s against 2.3 s)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """The tiny demo base (tests/tiny.py's sizes, untrained), built once for every test of
    brainmr.diffusion: its pipeline folder. Read-only: a test that changes a base copies it."""
    from tiny import TINY_BASE

    from brainmr.config import stage_config
    from brainmr.diffusion.config import DemoBaseConfig
    from brainmr.diffusion.demo_base import build_demo_base

    out = tmp_path_factory.mktemp("tiny_base") / "demo"
    build_demo_base(out, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE))
    return out


@pytest.fixture(scope="session")
def tiny_instances(tmp_path_factory):
    """Eight 160 x 160 blob slices (radius 50 +- 5), CN and AD alternating, with the paper's
    prompts: the instance table DreamBooth's tests train on."""
    import numpy as np
    from tiny import AD_PROMPT, CN_PROMPT, write_blob_slices

    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        group = "AD" if i % 2 else "CN"
        radius = 50 + 5 * rng.standard_normal()
        prompt = AD_PROMPT if group == "AD" else CN_PROMPT
        rows.append({"subject": f"S{i}", "group": group, "radius": radius, "prompt": prompt})
    table = write_blob_slices(tmp_path_factory.mktemp("slices"), rows)
    return table[["path", "group", "prompt", "subject"]]
