"""The benchmark summary reads Snakemake's benchmark files correctly (no timings asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from run_all import demo_stage_times, markdown_table  # noqa: E402

# repository checks: subprocesses and whole-tree scans, seconds to tens of seconds each
pytestmark = pytest.mark.slow

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, seconds: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")


def test_stage_times_sum_jobs_per_rule(tmp_path):
    """Shared jobs' benchmark files in results/benchmarks, a run's own in results/<study>/."""
    shared, own = tmp_path / "benchmarks", tmp_path / "table1" / "benchmarks"
    write_benchmark(shared / "preprocess_scan" / "a.tsv", 3.0, 900.0)
    write_benchmark(shared / "preprocess_scan" / "b.tsv", 5.0, 1200.0)
    write_benchmark(shared / "synthesize_demo_scan" / "s" / "d" / "I1.tsv", 1.5, 300.0)
    write_benchmark(shared / "fit_kde.tsv", 2.0, 400.0)
    write_benchmark(own / "measure_sets" / "seed0.tsv", 4.0, 500.0)
    write_benchmark(own / "measure_sets" / "seed1.tsv", 6.0, 700.0)
    table = demo_stage_times(tmp_path).set_index("rule")
    assert table.at["measure_sets", "jobs"] == 2 and table.at["measure_sets", "total_s"] == 10.0
    assert table.at["preprocess_scan", "jobs"] == 2
    assert table.at["preprocess_scan", "total_s"] == 8.0
    assert table.at["preprocess_scan", "max_job_s"] == 5.0
    assert table.at["preprocess_scan", "peak_rss_mb"] == 1200.0
    assert table.at["synthesize_demo_scan", "jobs"] == 1
    assert table.at["fit_kde", "total_s"] == 2.0
    markdown = markdown_table(table.reset_index())
    assert markdown.splitlines()[0].startswith("| rule | jobs |")
    assert "| preprocess_scan | 2 | 8.0 | 5.0 | 1200.0 |" in markdown


def test_every_bench_section_runs_in_quick_mode(tmp_path):
    """`make bench` runs each section; here each on its smallest input. A section that exits
    non-zero fails this test, and run_all exits non-zero (as `make bench` then does)."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--out", str(tmp_path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "FAILED" not in summary
    for name in ("dryrun", "preprocess", "diffusion", "evaluate"):
        assert (tmp_path / f"{name}.json").stat().st_size > 0, name
    diffusion = json.loads((tmp_path / "diffusion.json").read_text())
    assert diffusion["dreambooth"]["trainer"] == "brainmr.diffusion.dreambooth.train_dreambooth"
    assert diffusion["dreambooth"]["cached"]["steps_per_s"] > 0


def test_run_all_exits_non_zero_when_a_section_fails(tmp_path, monkeypatch):
    import run_all

    monkeypatch.setattr(run_all, "QUICK", {"dryrun": ["-c", "import sys; sys.exit(3)"]})
    monkeypatch.setattr(
        sys, "argv", ["run_all.py", "--quick", "--only", "dryrun", "--out", str(tmp_path)]
    )
    with pytest.raises(SystemExit) as exit_info:
        run_all.main()
    assert "dryrun" in str(exit_info.value.code)
    assert "FAILED (exit 3)" in (tmp_path / "summary.md").read_text()


def test_disk_bench_runs_in_quick_mode(tmp_path):
    """bench/disk.py (not a `make bench` section: it writes ~15 GB at SD 1.5 size) on the demo
    base: the trainer's checkpoint and pipeline are measured, LoRA's checkpoint is the smaller."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "disk.json"
    proc = subprocess.run(
        [sys.executable, "bench/disk.py", "--quick", "--json", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    full, lora = figures["full_finetune"], figures["lora_r4"]
    assert full["checkpoint_gb"] > 0 and full["pipeline_gb"] > 0
    assert lora["checkpoint_gb"] < full["checkpoint_gb"]  # adapters + their AdamW state only
    text = figures["full_finetune_text_encoder"]
    assert text["checkpoint_gb"] > full["checkpoint_gb"]
