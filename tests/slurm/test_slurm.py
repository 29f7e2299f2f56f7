"""The workflow through a real SLURM cluster: `snakemake --profile slurm`, end to end.

tests/slurm/cluster_up.sh starts a one-node cluster on localhost (slurmctld, slurmd with fake
GPUs, slurmdbd + MariaDB so that sacct works) and cluster_down.sh stops it. The suite's shared
end-to-end run (the `small_run` fixture, tests/small_run.py) goes through that cluster with the
repo's own profile (slurm/config.yaml), only its placeholders overridden (partition, account)
plus test-speed knobs; sacct then tells whether every job completed, whether the GPU rules got a
GPU and the others none, and whether the per-subject rules were packed into group jobs.

Needs root and apt-get (Debian's slurm packages are installed when missing): skipped otherwise,
or with BRAINMR_SKIP_SLURM=1 (the shared run then goes through the local executor). About 6
minutes on 2 cores, the whole small DAG.
    pytest -m slurm tests/slurm -ra
The static checks of the profile at the end of this file run everywhere.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from small_run import (
    CONFIG,
    PROFILE,
    ROOT,
    VENV_BIN,
    sacct_jobs,
    slurm_env,
    slurm_skip_reason,
    submitted_job_ids,
)

GPU_RULES = ("train_dreambooth", "generate_images", "train_classifier")
SUBJECT_GROUP = "subject"
PER_SUBJECT_RULES = ("synthesize_demo_scan", "preprocess_scan")

needs_cluster = pytest.mark.skipif(slurm_skip_reason() is not None, reason=str(slurm_skip_reason()))


@pytest.fixture(scope="module")
def slurm_run(small_run):
    """The shared end-to-end run, which went through SLURM here: (run dir, output, start)."""
    assert small_run.executor == "slurm", "a cluster could be started, yet the run was local"
    return small_run.run_dir, small_run.output, small_run.start


@pytest.fixture(scope="module")
def slurm_cluster(small_run):
    return slurm_env()


def rule_of(job: dict[str, str]) -> str:
    """rule_<name>[_wildcards_<values>] -> <name>; a group job gives <group>_<its rules>."""
    comment = job["Comment"]
    assert comment.startswith("rule_"), f"job {job['JobID']}: unexpected comment {comment!r}"
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@pytest.mark.slurm
@needs_cluster
def test_every_job_completed_in_sacct(slurm_run, slurm_cluster):
    run_dir, output, start = slurm_run
    assert (run_dir / "results" / "table1" / "table1.csv").is_file()
    assert (run_dir / "results" / "table1" / "figure1.png").is_file()
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
    assert {"fit_kde", "measure_sets"} <= seen, f"CPU rules missing from sacct: {seen}"
    # the Snakefile's local rules (seconds on small tables) run beside Snakemake, not as jobs
    assert not {"report_tables", "summarise_replicates", "write_slice_table"} & seen, seen


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
