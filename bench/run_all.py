"""Run every benchmark and summarise: `make bench` (or .venv/bin/python bench/run_all.py).

Writes results/bench/<name>.json per benchmark and results/bench/summary.md, and prints the
summary. The per-stage wall time of the demo DAG comes from Snakemake's `benchmark:` files of the
last `make demo` (results/benchmarks/); on a fresh clone the demo DAG is run first (~9 minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "bench"
BENCHES = {
    "dryrun": ["bench/dryrun.py", "--subjects", "700", "--conditions", "2"],
    "preprocess": ["bench/preprocess.py"],
    "diffusion": ["bench/diffusion.py"],
    "evaluate": ["bench/evaluate.py"],
}
# --quick: every section on the smallest input that runs all of its code (tests)
QUICK = {
    "dryrun": ["bench/dryrun.py", "--subjects", "20", "--conditions", "2", "--repeat", "1"],
    "preprocess": ["bench/preprocess.py", "--subjects", "1", "--no-default"]
    + ["--strip", "none", "--dry-run-subjects", "20"],
    "diffusion": ["bench/diffusion.py", "--quick", "--threads", "1"],
    "evaluate": ["bench/evaluate.py", "--sizes", "demo", "--epochs", "1", "--threads", "1"],
}


def benchmark_folders(results: Path) -> list[Path]:
    """The Snakemake benchmark folders of a results/ folder: the shared work's and each run's
    own (results/<study>/benchmarks)."""
    return [
        p for p in [results / "benchmarks", *sorted(results.glob("*/benchmarks"))] if p.is_dir()
    ]


def demo_stage_times(results: Path) -> pd.DataFrame:
    """Wall seconds and peak memory per rule of the last demo run (Snakemake benchmark files)."""
    rows = []
    tables = [
        (tsv, folder) for folder in benchmark_folders(results) for tsv in folder.rglob("*.tsv")
    ]
    for tsv, folder in sorted(tables):
        rule = tsv.relative_to(folder).parts[0].removesuffix(".tsv")
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "s": bench.s.iloc[0], "max_rss_mb": bench.max_rss.iloc[0]})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "max_job_s", "peak_rss_mb"])
    table = pd.DataFrame(rows)
    return (
        table.groupby("rule")
        .agg(
            jobs=("s", "size"),
            total_s=("s", "sum"),
            max_job_s=("s", "max"),
            peak_rss_mb=("max_rss_mb", "max"),
        )
        .round(1)
        .reset_index()
    )


def markdown_table(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    return head + "".join(
        "| " + " | ".join(map(str, row)) + " |\n" for row in table.itertuples(index=False)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument(
        "--no-demo", action="store_true", help="do not run the demo DAG when it has not run yet"
    )
    parser.add_argument("--quick", action="store_true", help="smallest inputs (tests); no demo")
    parser.add_argument("--out", type=Path, default=OUT, help="where the figures go")
    args = parser.parse_args()
    out = args.out
    benches = QUICK if args.quick else BENCHES
    lines = [f"# Benchmarks\n\nMachine: {machine()}\n"]
    failed = []
    for name in args.only:
        cmd = [sys.executable, *benches[name], "--json", str(out / f"{name}.json")]
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        print(proc.stdout, end="", flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            lines.append(f"## {name}\n\nFAILED (exit {proc.returncode})\n")
            failed.append(name)
            continue
        lines.append(f"## {name}\n\n`python {' '.join(benches[name])}`\n\n```\n{proc.stdout}```\n")

    if not benchmark_folders(REPO / "results") and not (args.no_demo or args.quick):
        # a fresh clone: run the demo DAG once so that its per-rule figures exist
        print("$ snakemake --cores 2 (the demo, for its per-rule benchmark files)", flush=True)
        snakemake = str(Path(sys.executable).with_name("snakemake"))
        subprocess.run([snakemake, "--cores", "2", "--quiet", "rules"], cwd=REPO, check=True)
    stages = demo_stage_times(REPO / "results")
    if len(stages):
        write_json(out / "demo_stages.json", {"stages": stages.to_dict(orient="records")})
        lines.append(
            "## demo DAG per rule (from results/benchmarks of the last `make demo`)\n\n"
            + markdown_table(stages)
            + "\n"
        )
    summary = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary)
    print(summary)
    print(json.dumps({"written": str(out), "failed": failed}))
    if failed:  # `make bench` must not pass with a broken section
        sys.exit(f"benchmark sections failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
