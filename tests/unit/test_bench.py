"""The benchmark summary reads Snakemake's benchmark files correctly (no timings asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from run_all import demo_stage_times, markdown_table  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, seconds: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")


def test_stage_times_sum_jobs_per_rule(tmp_path):
    write_benchmark(tmp_path / "preprocess_scan" / "a.tsv", 3.0, 900.0)
    write_benchmark(tmp_path / "preprocess_scan" / "b.tsv", 5.0, 1200.0)
    write_benchmark(tmp_path / "synthesize_demo_scan" / "s" / "d" / "I1.tsv", 1.5, 300.0)
    write_benchmark(tmp_path / "fit_kde.tsv", 2.0, 400.0)
    table = demo_stage_times(tmp_path).set_index("rule")
    assert table.at["preprocess_scan", "jobs"] == 2
    assert table.at["preprocess_scan", "total_s"] == 8.0
    assert table.at["preprocess_scan", "max_job_s"] == 5.0
    assert table.at["preprocess_scan", "peak_rss_mb"] == 1200.0
    assert table.at["synthesize_demo_scan", "jobs"] == 1
    assert table.at["fit_kde", "total_s"] == 2.0
    markdown = markdown_table(table.reset_index())
    assert markdown.splitlines()[0].startswith("| rule | jobs |")
    assert "| preprocess_scan | 2 | 8.0 | 5.0 | 1200.0 |" in markdown
