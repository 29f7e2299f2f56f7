"""The workflow as a user drives it: lint, format, dry runs of several configs, bad config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, run_snakemake
from small_run import CONFIG as SMALL_CONFIG

BIN = Path(sys.executable).parent


def job_counts(stdout: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    table = stdout.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


KEY = "[0-9a-f]{8}"  # a model's or image set's settings key (brainmr.conditions.settings_key)


def model_pipeline(condition: str, seed: int, model: str = "shared") -> re.Pattern:
    """A DreamBooth pipeline folder as a dry run lists it, whatever its settings key."""
    return re.compile(rf"results/models/{condition}/{KEY}/seed{seed}/{model}/pipeline")


def keyed_folders(stdout: str, kind: str, condition: str) -> set[str]:
    """The settings keys of a condition's models or image sets that a dry run lists."""
    return set(re.findall(rf"results/{kind}/{condition}/({KEY})/", stdout))


def tree_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under a folder: its modification time and its bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


DROP = object()  # write_config: leave this key out


def write_config(path: Path, base: str, **changes) -> Path:
    config = yaml.safe_load((REPO / base).read_text())
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is DROP:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_lint_is_clean():
    proc = subprocess.run(
        [SNAKEMAKE, "--lint"],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_and_ruff_are_clean():
    fmt = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert fmt.returncode == 0, fmt.stderr
    paths = ["src", "tests", "bench", "workflow/scripts"]
    ruff = subprocess.run(
        [str(BIN / "ruff"), "check", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert ruff.returncode == 0, ruff.stdout
    ruff_format = subprocess.run(
        [str(BIN / "ruff"), "format", "--check", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert ruff_format.returncode == 0, ruff_format.stdout


def test_dry_run_default_config_lists_every_subject(tmp_path):
    proc = run_snakemake(tmp_path, "-n")
    counts = job_counts(proc.stdout)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    n = config["demo"]["n_ad"] + config["demo"]["n_cn"]
    assert counts["synthesize_demo_scan"] == n
    assert counts["preprocess_scan"] == n
    seeds = len(config["seeds"])
    assert seeds == 3  # the demo runs 3 replicate seeds
    assert counts["train_dreambooth"] == 2 * seeds and counts["generate_images"] == 2 * seeds
    assert counts["train_classifier"] == seeds and counts["fit_kde"] == 1
    assert counts["summarise_replicates"] == 1 and counts["report_tables"] == 1
    assert counts["draw_figures"] == 1 and counts["measure_kde_sensitivity"] == 1
    # the demo base pretrains on a GPU when it has one, but asks SLURM for one only if told to
    assert "gpu=1" not in job_block(proc.stdout, "pretrain_demo_base")
    assert "gpu=1" in job_block(proc.stdout, "train_dreambooth")
    asked = write_config(tmp_path / "gpu.yaml", "config/config.yaml", **{"demo_base.gpu": True})
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(asked))
    assert "gpu=1" in job_block(proc.stdout, "pretrain_demo_base")


def job_block(stdout: str, rule: str) -> str:
    """The dry run's description of the first job of ``rule``."""
    return stdout.split(f"rule {rule}:")[1].split("\n\n")[0]


def test_third_condition_is_a_config_edit(tmp_path):
    config = write_config(
        tmp_path / "three.yaml",
        "config/config.yaml",
        **{"conditions.scan": {"AD": "AD, a T1 scan", "CN": "CN, a T1 scan", "label": " (scan)"}},
    )
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(config))
    counts = job_counts(proc.stdout)
    assert counts["train_dreambooth"] == 9  # 3 conditions x 3 seeds
    assert counts["generate_images"] == 9  # one job per model: both classes
    assert counts["score_generated"] == 18
    for seed in (0, 1, 2):
        assert model_pipeline("scan", seed).search(proc.stdout)


def test_remedies_study_dry_run_lists_one_model_per_remedy_and_seed(tmp_path):
    """make remedies: 5 remedies + the baseline, 3 seeds; two models per seed for the remedy
    with per_class_models; the demo's nobrain condition is dropped by the layered file."""
    configs = [str(REPO / "config/config.yaml"), str(REPO / "config/remedies_demo.yaml")]
    proc = run_snakemake(tmp_path, "-n", "--configfile", *configs)
    counts = job_counts(proc.stdout)
    assert counts["train_dreambooth"] == 6 * 3 + 3
    assert counts["generate_images"] == 6 * 3 and counts["report_remedies"] == 1
    for seed in (0, 1, 2):
        for remedy in ("brain", "balance", "rare", "negative", "prior"):
            assert model_pipeline(remedy, seed).search(proc.stdout)
        for group in ("AD", "CN"):
            assert model_pipeline("separate", seed, group).search(proc.stdout)
        assert not model_pipeline("separate", seed).search(proc.stdout)
    assert "results/models/nobrain" not in proc.stdout


def test_a_study_shares_the_work_of_equal_settings_and_writes_to_its_own_folder(tmp_path):
    """make demo, then make remedies: the study's brain models are the demo's (same settings,
    same folder), its brain images are not (50 images, not 100: a folder of their own), and
    every table, figure and report it writes is under results/remedies/, none under the demo's
    results/table1/."""
    demo = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/config.yaml"))
    configs = [str(REPO / "config/config.yaml"), str(REPO / "config/remedies_demo.yaml")]
    study = run_snakemake(tmp_path, "-n", "--configfile", *configs)
    models = keyed_folders(demo.stdout, "models", "brain")
    assert len(models) == 1 and keyed_folders(study.stdout, "models", "brain") == models
    images = keyed_folders(demo.stdout, "generated", "brain")
    assert len(images) == 1 and len(keyed_folders(study.stdout, "generated", "brain")) == 1
    assert keyed_folders(study.stdout, "generated", "brain") != images
    assert "results/remedies/remedies.md" in study.stdout
    assert "results/remedies/table1.md" in study.stdout
    assert "results/table1/" not in study.stdout
    assert "results/table1/table1.md" in demo.stdout and "results/remedies/" not in demo.stdout


def test_real_remedies_study_is_valid_on_the_real_config():
    """config/remedies.yaml layered on config/adni.yaml (as the README's command does) passes
    the schema and names only defined conditions; six remedies, one with two models."""
    from snakemake.utils import update_config, validate

    from brainmr.conditions import conditions_of, remedies_of

    config = yaml.safe_load((REPO / "config/adni.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/remedies.yaml").read_text()))
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
    baseline, remedies = remedies_of(config)
    assert baseline == "brain" and len(remedies) >= 5
    models = {name: c.models() for name, c in conditions_of(config).items()}
    assert models["separate"] == ["AD", "CN"] and models["brain"] == ["shared"]


def test_unknown_config_key_is_named(tmp_path):
    config = write_config(tmp_path / "typo.yaml", "config/config.yaml", **{"generate.n_imgaes": 5})
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    assert "n_imgaes" in proc.stdout + proc.stderr


def make_adni_fixture(root: Path, subjects: dict[str, str]) -> Path:
    """A LONI-style CSV and download folder with small NIfTI volumes."""
    lines = [
        '"Image Data ID","Subject","Group","Sex","Age","Visit","Modality","Description","Type",'
        '"Acq Date","Format","Downloaded"'
    ]
    for i, (subject, group) in enumerate(subjects.items()):
        image_id = 1000 + i
        lines.append(
            f'"{image_id}","{subject}","{group}","M","70","sc","MRI","MPRAGE","Original",'
            f'"3/{i + 1}/2012","NiFTI","11/20/2026"'
        )
        folder = (
            root / "ADNI" / subject / "MPRAGE" / f"2012-03-{i + 1:02d}_10_00_00.0" / f"I{image_id}"
        )
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), folder / "t1.nii")
    csv = root / "collection.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def fake_sd_folder(root: Path) -> Path:
    """Where a user's Stable Diffusion folder would be (a dry run only checks that it exists)."""
    folder = root / "stable-diffusion-v1-5"
    folder.mkdir(exist_ok=True)
    (folder / "model_index.json").write_text("{}")
    return folder


def adni_fixture_config(tmp_path: Path, subjects: dict[str, str], **changes) -> Path:
    """config/adni.yaml pointed at a LONI-style fixture (and a local SD folder) made here."""
    csv = make_adni_fixture(tmp_path / "adni", subjects)
    paths = {
        "cohort.collection_csv": str(csv),
        "cohort.download_dir": str(tmp_path / "adni"),
        "base_model": str(fake_sd_folder(tmp_path)),
    }
    return write_config(tmp_path / "adni.yaml", "config/adni.yaml", **(paths | changes))


def test_dry_run_adni_config_on_fixture(tmp_path):
    subjects = {f"{100 + i:03d}_S_{2000 + i:04d}": ("AD" if i < 3 else "CN") for i in range(7)}
    config = adni_fixture_config(tmp_path, subjects)
    proc = run_snakemake(tmp_path / "work", "-n", "--configfile", str(config))
    counts = job_counts(proc.stdout)
    assert counts["preprocess_scan"] == 7
    assert "synthesize_demo_scan" not in counts and "pretrain_demo_base" not in counts
    assert yaml.safe_load(config.read_text())["seeds"] == [0, 1, 2]
    assert counts["train_dreambooth"] == 6 and counts["train_classifier"] == 3
    for subject in subjects:
        assert f"results/slices/{subject}.npy" in proc.stdout


def test_dry_run_of_the_instructions_study_on_the_adni_config(tmp_path):
    """config/instructions.yaml layered on the real config: one more model per seed, judged for
    age and sex against the class-only baseline; the Table 1 jobs are the same otherwise."""
    subjects = {f"{100 + i:03d}_S_{2000 + i:04d}": ("AD" if i < 3 else "CN") for i in range(7)}
    config = adni_fixture_config(tmp_path, subjects)
    study = str(REPO / "config/instructions.yaml")
    proc = run_snakemake(tmp_path / "work", "-n", "--configfile", str(config), study)
    counts = job_counts(proc.stdout)
    assert counts["train_dreambooth"] == 9 and counts["train_attribute_judges"] == 1
    assert counts["judge_instructions"] == 3 and counts["report_instructions"] == 1
    assert "results/instructions/instructions.md" in proc.stdout
    assert model_pipeline("instructed", 2).search(proc.stdout)


def test_dry_run_adni_config_missing_image_fails_before_jobs(tmp_path):
    subjects = {"100_S_2000": "AD", "101_S_2001": "CN", "102_S_2002": "CN"}
    config = adni_fixture_config(tmp_path, subjects)
    for f in (tmp_path / "adni" / "ADNI" / "101_S_2001").rglob("*.nii"):
        f.unlink()
    proc = run_snakemake(tmp_path / "work", "-n", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    assert "101_S_2001 (I1001)" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_end_to_end_small_run(small_run, tmp_path):
    """The whole DAG on the small config (the suite's shared run, through SLURM where the machine
    allows): slices, models, images, Table 1, figures, report; then local runs in its folder."""
    config = str(REPO / SMALL_CONFIG)
    run_dir = small_run.run_dir

    def in_run_dir(*args: str):
        return run_snakemake(run_dir, *args, snakefile=run_dir / "Snakefile")

    shared = run_dir / "results"
    results = shared / "table1"  # this run's own folder (study: table1, the default)
    scans = (shared / "cohort/scans.tsv").read_text().splitlines()
    assert len(scans) == 1 + 7
    for name in [
        "table1.csv",
        "table1.md",
        "table1_vs_paper.md",
        "table1_summary.csv",
        "table1_summary.md",
        "metrics.csv",
        "figure1.png",
        "figures/forest.png",
        "evaluate/kde_sensitivity.csv",
        "morphometry.csv",
        "morphometry.md",
        "figures/morphometry.png",
        "evaluate/findings.json",
    ]:
        assert (results / name).stat().st_size > 0, name
    # one ceiling set per (VAE, resolution), not per seed: the held-out reals through it
    assert [p.name for p in (shared / "ceiling").iterdir()] == ["vae32"]
    held_out = sum(1 for line in scans[1:] if line.split("\t")[-1] == "test")
    ceiling = [list((shared / f"ceiling/vae32/{g}").glob("*.png")) for g in ("AD", "CN")]
    assert sum(map(len, ceiling)) == held_out > 0
    # the templated condition: each image's prompt and request, and the study's table
    (manifest,) = shared.glob("generated/instructed/*/seed0/AD/manifest.tsv")
    manifest = manifest.read_text()
    assert "requested_age" in manifest and "year old" in manifest
    study = (results / "instructions.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in study and "shuffled" in study
    assert (results / "figures/instructions_seed1.png").stat().st_size > 0
    table1 = (results / "table1.md").read_text(encoding="utf-8")
    assert "held-out real AD through the generator (vae32)" in table1
    assert "## What this table found" in table1
    assert len(list((shared / "slices").glob("*.npy"))) == 7
    assert len(list((shared / "qc").glob("*.png"))) == 7
    for seed in (0, 1):
        assert len(list(shared.glob(f"generated/brain/*/seed{seed}/AD/*.png"))) == 4
        (model,) = shared.glob(f"models/brain/*/seed{seed}/shared")
        assert (model / "validation.png").stat().st_size > 0
        assert not (model / "checkpoints").exists()  # removed once the pipeline is saved
        cnn = json.loads((shared / f"evaluate/seed{seed}/classifier/metrics.json").read_text())
        assert cnn["arch"]["input_size"] == 32  # evaluate.cnn_input_size reached the model
    # logs are plain lines (no carriage-return frames) and small enough to read with less
    sizes = {p: p.stat().st_size for p in shared.rglob("logs/**/*.log")}
    assert sizes and max(sizes.values()) < 20_000, max(sizes.items(), key=lambda kv: kv[1])
    assert not [p for p in sizes if "\r" in p.read_text()]
    (dreambooth_log,) = shared.glob("logs/train_dreambooth/brain/*/seed0/shared.log")
    dreambooth_log = dreambooth_log.read_text()
    assert "DreamBooth pipeline: 4/4 step (100%)" in dreambooth_log
    assert len(dreambooth_log) < 10_000
    summary = (results / "table1_summary.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in summary and "paired t" in summary and "images independent" in summary
    # the remedy: two models per seed, each class's images from its own; the remedies table
    for seed in (0, 1):
        for group in ("AD", "CN"):
            assert len(list(shared.glob(f"models/separate/*/seed{seed}/{group}/pipeline"))) == 1
            (manifest,) = shared.glob(f"generated/separate/*/seed{seed}/{group}/manifest.tsv")
            assert f"{'zwx' if group == 'AD' else 'qpv'}, a MRI brain" in manifest.read_text()
    remedies = (results / "remedies.md").read_text()
    assert "SYNTHETIC" in remedies and "brain (baseline)" in remedies and "| separate |" in remedies
    assert (results / "figures/remedies_forest.png").stat().st_size > 0
    assert "separate" in (results / "remedies.csv").read_text()
    assert "| AD (remedy) |" in (results / "table1.md").read_text()  # Table 1 has every condition
    # the privacy study (brain's models and the base): the attack, its floor, copies, steps
    privacy = (results / "privacy.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in privacy and "base model (floor)" in privacy
    assert "not estimable" in privacy  # 2 non-members per model cannot resolve 10% FPR
    table = (results / "privacy.csv").read_text().splitlines()
    assert len(table) == 2 and table[0].startswith("condition,model,n_seeds,auc_mean")
    assert (results / "figures/privacy_attack.png").stat().st_size > 0
    assert (results / "figures/privacy_steps_brain.png").stat().st_size > 0
    steps = (results / "evaluate/privacy_steps.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in steps[1:]] == ["2", "4"]
    # bench/coverage.py reads a finished run: reals through R px and through the run's VAE
    out = tmp_path / "coverage.json"
    cmd = [str(BIN / "python"), str(REPO / "bench/coverage.py"), str(shared), "--sizes", "16"]
    subprocess.run([*cmd, "--json", str(out)], check=True, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())
    for group in ("AD", "CN"):
        names = ["train reals via 16 px", "train reals via the VAE at 32 px", "generated brain"]
        for name in names:
            assert {"precision", "coverage"} <= set(rows[f"{group}: {name}"])
    assert "SYNTHETIC" in (results / "table1.md").read_text().upper()
    demo_inputs = sorted(p.stat().st_mtime_ns for p in (shared / "demo/ADNI").rglob("*.nii.gz"))
    report = in_run_dir(
        "--cores", "1", "--configfile", config, "--report", "results/table1/report.html"
    )
    assert report.returncode == 0 and (results / "report.html").stat().st_size > 10_000
    # nothing upstream was rewritten by the report run
    assert demo_inputs == sorted(
        p.stat().st_mtime_ns for p in (shared / "demo/ADNI").rglob("*.nii.gz")
    )
    # One stage's setting reruns that stage and what reads it, nothing upstream.
    planned = {}
    for key, value, reruns, untouched in [
        (
            "evaluate.outlier_mad_k",
            3.0,
            {"flag_outliers", "summarise_replicates", "report_tables"},
            {"fit_kde", "train_classifier", "score_generated", "train_dreambooth"},
        ),
        (
            "evaluate.ood_fraction",
            0.9,
            {"measure_sets", "report_tables"},
            {"flag_outliers", "train_classifier", "fit_kde"},
        ),
        # a remedy's sampling option reruns that remedy's sampling alone, not its training
        (
            "conditions.separate.guidance_scale",
            {"AD": 2.0},
            {"generate_images", "score_generated", "summarise_remedies"},
            {"train_dreambooth", "fit_kde", "train_classifier"},
        ),
        # how often checkpoints are written does not change the model: no GPU hours lost
        ("dreambooth.checkpointing_steps", 3, set(), {"train_dreambooth", "generate_images"}),
        (
            "dreambooth.noise_offset",
            0.05,
            {"train_dreambooth", "generate_images", "score_generated"},
            {"preprocess_scan", "fit_kde", "train_classifier", "pretrain_demo_base"},
        ),
    ]:
        changed = write_config(tmp_path / "changed.yaml", SMALL_CONFIG, **{key: value})
        counts = planned[key] = job_counts(in_run_dir("-n", "--configfile", str(changed)).stdout)
        assert reruns <= set(counts), (key, counts)
        assert not untouched & set(counts), (key, counts)
        if key.startswith("conditions.separate"):  # the other conditions' images stay
            assert counts["generate_images"] == 2, counts  # separate, seeds 0 and 1
    # and the remedy's sampling change as a study of its own, run for real with the local
    # executor (whichever executor ran the DAG; a GPU rule among its jobs): the jobs its dry run
    # listed run, nothing else (the models and the other image sets are shared), then nothing is
    # left to do, and not one file of the first run's own folder has changed
    key = "conditions.separate.guidance_scale"
    # a study of the remedy alone: the instructed condition and the privacy study left out
    changes = {key: {"AD": 2.0}, "study": "guidance", "conditions.instructed": None}
    changes |= {"privacy": DROP, "instructions": DROP}
    changed = write_config(tmp_path / "changed.yaml", SMALL_CONFIG, **changes)
    planned = job_counts(in_run_dir("-n", "--configfile", str(changed)).stdout)
    before = tree_state(results)
    rerun = in_run_dir("--cores", "2", "--configfile", str(changed))
    ran = job_counts(rerun.stdout + rerun.stderr)  # a real run logs its job stats on stderr
    assert ran == planned and ran["generate_images"] == 2, (ran, planned)
    assert "train_dreambooth" not in ran and "score_real" not in ran
    assert not job_counts(in_run_dir("-n", "--configfile", str(changed)).stdout)
    assert tree_state(results) == before
    assert "| AD (remedy) |" in (shared / "guidance/table1.md").read_text()
    assert len(list(shared.glob("generated/separate/*/seed0/AD"))) == 2  # both settings kept


def test_summary_and_dag_commands_of_the_readme(tmp_path):
    summary = run_snakemake(tmp_path, "--summary").stdout
    assert "results/table1/table1.csv" in summary
    dag = run_snakemake(tmp_path, "--dag").stdout
    assert dag.lstrip().startswith("digraph") and "preprocess_scan" in dag


def test_configfile_replaces_the_demo_config_instead_of_merging(tmp_path):
    """A condition left out of a given config is not brought back from config/config.yaml."""
    subjects = {f"{100 + i:03d}_S_{2000 + i:04d}": ("AD" if i < 2 else "CN") for i in range(5)}
    brain_only = {"brain": {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain"}}
    config = adni_fixture_config(tmp_path, subjects, conditions=brain_only)
    proc = run_snakemake(tmp_path / "work", "-n", "--configfile", str(config))
    counts = job_counts(proc.stdout)
    assert counts["train_dreambooth"] == 3 and counts["generate_images"] == 3
    assert "results/models/nobrain" not in proc.stdout


def test_missing_local_base_model_fails_before_any_job(tmp_path):
    subjects = {"100_S_2000": "AD", "101_S_2001": "CN", "102_S_2002": "CN"}
    config = adni_fixture_config(tmp_path, subjects, base_model="/path/to/stable-diffusion-v1-5")
    proc = run_snakemake(tmp_path / "work", "-n", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    assert "/path/to/stable-diffusion-v1-5" in proc.stdout + proc.stderr


def test_missing_config_sections_take_the_schema_defaults(tmp_path):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for section in ("preprocess", "dreambooth", "generate", "evaluate"):
        config.pop(section)
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path))
    assert job_counts(proc.stdout)["train_dreambooth"] == 6
