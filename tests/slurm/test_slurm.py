"""The workflow through a real SLURM cluster: `snakemake --profile slurm`, end to end.

tests/slurm/cluster_up.sh starts a one-node cluster on localhost (slurmctld, slurmd with fake
GPUs, slurmdbd + MariaDB so that sacct works) and cluster_down.sh stops it. The run uses the
repo's own profile (slurm/config.yaml) with only its placeholders overridden (partition, account)
plus test-speed knobs, on a copy of the workflow in a temporary folder. sacct then tells whether
every job completed, whether the GPU rules got a GPU and the others none, and whether the
per-subject rules were packed into group jobs.

Needs root and apt-get (Debian's slurm packages are installed when missing): skipped otherwise,
or with BRAINMR_SKIP_SLURM=1. About 5 minutes on 2 cores. BRAINMR_SLURM_CONFIGFILE picks another
config (relative to the repo root).
    pytest -m slurm tests/slurm -ra
The static checks of the profile at the end of this file run everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROFILE = ROOT / "slurm" / "config.yaml"
CONFIG = os.environ.get("BRAINMR_SLURM_CONFIGFILE", "tests/fixtures/config_small.yaml")
VENV_BIN = Path(sys.executable).parent
SLURM_DIR = Path(os.environ.get("BRAINMR_SLURM_DIR", "/tmp/brainmr-slurm"))
PARTITION = os.environ.get("BRAINMR_SLURM_PARTITION", "brainmr")
ACCOUNT = os.environ.get("BRAINMR_SLURM_ACCOUNT", "brainmr")
GPU_RULES = ("train_dreambooth", "generate_images", "train_classifier")
SUBJECT_GROUP = "subject"
PER_SUBJECT_RULES = ("synthesize_demo_scan", "preprocess_scan")
# What the workflow needs in the copy it runs (results and .snakemake stay out).
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "slurm", "src", "tests/fixtures")
RUN_TIMEOUT_S = 1200


def skip_reason() -> str | None:
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


needs_cluster = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def slurm_env() -> dict[str, str]:
    env = dict(os.environ)
    env["BRAINMR_SLURM_DIR"] = str(SLURM_DIR)
    env["SLURM_CONF"] = str(SLURM_DIR / "etc" / "slurm.conf")
    # Jobs run `python -m snakemake` and the rule scripts from this venv: sbatch exports PATH.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def cluster_is_up() -> bool:
    """Our slurmctld runs (started by hand earlier): then the test leaves the cluster up."""
    pid_file = SLURM_DIR / "run" / "slurmctld.pid"
    try:
        pid = int(pid_file.read_text())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def slurm_cluster():
    was_up = cluster_is_up()
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
        pytest.fail(f"cluster_up.sh failed ({up.returncode}):\n{up.stderr[-4000:]}")
    yield slurm_env()
    if not was_up:
        subprocess.run(["bash", str(HERE / "cluster_down.sh")], env=slurm_env(), timeout=300)


def profile_overrides(profile: dict) -> list[str]:
    """The profile's default-resources with the local cluster's partition and account."""
    defaults = dict(profile["default-resources"])
    defaults["slurm_partition"] = PARTITION
    defaults["slurm_account"] = ACCOUNT
    return [f"{name}={value}" for name, value in defaults.items()]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """Copy the workflow, run it through SLURM once; (run dir, snakemake output, start time)."""
    if not (ROOT / CONFIG).is_file():
        pytest.fail(f"{CONFIG} is missing: the SLURM test runs the workflow with it")
    run_dir = tmp_path_factory.mktemp("slurm_run")
    for part in WORKFLOW_PARTS:
        source, target = ROOT / part, run_dir / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    profile = yaml.safe_load(PROFILE.read_text())
    command = [
        str(VENV_BIN / "snakemake"),
        "--profile", "slurm",
        "--configfile", CONFIG,
        "--default-resources", *profile_overrides(profile),
        # test cluster: 2 cores; a failure is a failure (no retries); poll often
        "--cores", "2",
        "--restart-times", "0",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]  # fmt: skip
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    result = subprocess.run(
        ["nice", "-n", "10", *command],
        cwd=run_dir,
        env=slurm_cluster,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    (run_dir / "snakemake_slurm.log").write_text(output)
    if result.returncode != 0:
        pytest.fail(f"snakemake --profile slurm failed ({result.returncode}):\n{output[-6000:]}")
    # sacct's view, kept beside the run for a person to read (the cluster goes down after)
    jobs = sacct_jobs(slurm_cluster, start, output)
    lines = ["\t".join(jobs[0])] + ["\t".join(job.values()) for job in jobs] if jobs else []
    (run_dir / "sacct.tsv").write_text("\n".join(lines) + "\n")
    return run_dir, output, start


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


def rule_of(job: dict[str, str]) -> str:
    """rule_<name>[_wildcards_<values>] -> <name>; a group job gives <group>_<its rules>."""
    comment = job["Comment"]
    assert comment.startswith("rule_"), f"job {job['JobID']}: unexpected comment {comment!r}"
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@pytest.mark.slurm
@needs_cluster
def test_every_job_completed_in_sacct(slurm_run, slurm_cluster):
    run_dir, output, start = slurm_run
    assert (run_dir / "results" / "table1.csv").is_file()
    assert (run_dir / "results" / "figure1.png").is_file()
    jobs = sacct_jobs(slurm_cluster, start, output)
    submitted = submitted_job_ids(output)
    assert submitted, "Snakemake reported no SLURM submission"
    assert {job["JobID"] for job in jobs} == submitted, "sacct and Snakemake disagree on the jobs"
    failed = [job for job in jobs if job["State"] != "COMPLETED" or job["ExitCode"] != "0:0"]
    assert not failed, f"jobs that did not complete: {failed}"


@pytest.mark.slurm
@needs_cluster
def test_gpu_rules_got_a_gpu_and_cpu_rules_none(slurm_run, slurm_cluster):
    _, output, start = slurm_run
    gpu_rules = set(GPU_RULES) | rules_declaring_gpu()
    seen = set()
    for job in sacct_jobs(slurm_cluster, start, output):
        rule = rule_of(job)
        seen.add(rule)
        if rule in gpu_rules:
            assert "gres/gpu=1" in job["AllocTRES"].split(","), (
                f"GPU rule {rule} without GPU: {job}"
            )
        else:
            assert "gres/gpu" not in job["AllocTRES"], f"CPU rule {rule} was given a GPU: {job}"
    assert set(GPU_RULES) <= seen, f"GPU rules missing from sacct: {set(GPU_RULES) - seen}"
    assert {"fit_kde", "report_tables"} <= seen, f"CPU rules missing from sacct: {seen}"


@pytest.mark.slurm
@needs_cluster
def test_per_subject_rules_ran_as_group_jobs(slurm_run, slurm_cluster):
    run_dir, output, start = slurm_run
    jobs = sacct_jobs(slurm_cluster, start, output)
    group_name = f"{SUBJECT_GROUP}_" + "_".join(sorted(PER_SUBJECT_RULES))
    group_jobs = [job for job in jobs if rule_of(job) == group_name]
    single = [job for job in jobs if rule_of(job) in PER_SUBJECT_RULES]
    assert not single, f"per-subject rules submitted one by one: {single}"
    slices = list((run_dir / "results" / "slices").glob("*.npy"))
    scans = list((run_dir / "results" / "demo" / "ADNI").rglob("*.nii.gz"))
    assert slices and len(scans) == len(slices)
    instances = len(slices) + len(scans)  # preprocess_scan + synthesize_demo_scan
    assert 1 <= len(group_jobs) < instances, f"{len(group_jobs)} group jobs, {instances} rule runs"
    assert (run_dir / ".snakemake" / "slurm_logs" / f"group_{group_name}").is_dir()


# --- static checks of the profile (no cluster needed) -------------------------------------


def smk_rule_bodies() -> dict[str, str]:
    bodies = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        heads = list(re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            bodies[head.group(1)] = text[head.end() : end]
    return bodies


def rules_declaring_gpu() -> set[str]:
    """Rules that always ask for a GPU (``gpu=1``). pretrain_demo_base asks only when
    ``demo_base.gpu`` is set, so here (the default) it must get none: the else branch checks."""
    return {
        rule
        for rule, body in smk_rule_bodies().items()
        if re.search(r"^\s+gpu\s*=\s*1\s*,", body, re.M)
    }


def test_profile_names_real_rules_and_asks_one_gpu_each():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert int(profile["jobs"]) > 0 and int(profile["restart-times"]) >= 1
    rules = smk_rule_bodies()
    for rule in GPU_RULES:
        assert rule in rules, f"profile's set-resources names {rule}, no such rule"
        assert profile["set-resources"][rule]["gpu"] == 1
    for rule, resources in profile["set-resources"].items():
        assert rule in rules, f"profile's set-resources names {rule}, no such rule"
        assert "gres" not in resources, f"{rule}: ask gpu (+ gpu_model), not gres and gpu"
    placeholders = profile["default-resources"]
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(placeholders)
    assert "EDIT" in placeholders["slurm_partition"] and "EDIT" in placeholders["slurm_account"]


def test_per_subject_rules_share_the_profiles_group():
    profile = yaml.safe_load(PROFILE.read_text())
    assert int(profile["group-components"][SUBJECT_GROUP]) > 1
    bodies = smk_rule_bodies()
    for rule in PER_SUBJECT_RULES:
        group = re.search(r"^\s+group:\s*\n?\s*[\"'](\w+)[\"']", bodies[rule], re.M)
        assert group and group.group(1) == SUBJECT_GROUP, f"{rule} lacks group: {SUBJECT_GROUP!r}"


def test_dry_run_with_the_profile_packs_subjects(tmp_path):
    """`snakemake --profile slurm -n` plans the per-subject rules as few group jobs."""
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "--profile", "slurm", "-n", "-F", "--configfile", CONFIG],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Using profile slurm" in output
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.M))
    instances = sum(int(stats.get(rule, 0)) for rule in PER_SUBJECT_RULES)
    groups = output.count(f"Group job {SUBJECT_GROUP}")
    assert instances > 1 and 1 <= groups < instances, (groups, instances)
