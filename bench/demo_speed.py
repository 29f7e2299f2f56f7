"""Side-by-side wall time of `make demo` for two commits, on this machine, in one sitting.

    python bench/demo_speed.py [--baseline 384a961] [--candidate HEAD] [--workdir /tmp/demo_speed]
    python bench/demo_speed.py --target remedies --no-baseline   # `make remedies`, one clone

Each commit is cloned fresh from this repository into --workdir, its .venv set up (`make
setup`, not timed), then `make demo` is timed for the baseline and then for the candidate, one
after the other (never at once: on a 2-core machine they would slow each other down). Prints both
wall times, their ratio (candidate / baseline) and the seconds per rule summed from Snakemake's
benchmark files, so that the two runs can be compared rule by rule. Absolute times vary between
machines and days; the ratio of two runs in one sitting is the figure to quote."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from run_all import demo_stage_times  # bench/ is this script's folder

REPO = Path(__file__).resolve().parents[1]


def clone(commit: str, where: Path) -> Path:
    if where.exists():
        shutil.rmtree(where)
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "-C", str(where), "checkout", "-q", sha], check=True)
    return where


def run(cmd: list[str], cwd: Path, log: Path) -> float:
    """Run ``cmd`` in ``cwd`` with its output in ``log``; the wall seconds it took."""
    env = os.environ | {"PYTHONUTF8": "1"}
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=True)
    return time.perf_counter() - start


def rule_seconds(clone_dir: Path) -> dict[str, list[float]]:
    """Jobs and summed seconds per rule of a clone's last demo (run_all's reading of them)."""
    table = demo_stage_times(clone_dir / "results")
    return {r.rule: [int(r.jobs), float(r.total_s)] for r in table.itertuples()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="384a961")
    parser.add_argument("--candidate", default="HEAD")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/demo_speed"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--target", default="demo", help="the make target to time (demo)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="time the candidate alone (no ratio)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = {}
    pairs = [("candidate", args.candidate)]
    if not args.no_baseline:
        pairs.insert(0, ("baseline", args.baseline))
    for name, commit in pairs:
        where = clone(commit, args.workdir / name)
        run(["make", "setup"], where, args.workdir / f"{name}_setup.log")
    for name, commit in pairs:
        where = args.workdir / name
        wall = run(["make", args.target], where, args.workdir / f"{name}_{args.target}.log")
        runs[name] = {"commit": commit, "wall_s": wall, "rules": rule_seconds(where)}
        print(f"{name} ({commit}): make {args.target} {wall / 60:.1f} min", flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if args.no_baseline:
        print(f"{'rule':24s} {'jobs':>6s} {'seconds':>9s}")
        for rule, (jobs, seconds) in sorted(runs["candidate"]["rules"].items()):
            print(f"{rule:24s} {int(jobs):6d} {seconds:9.1f}")
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2))
        return
    ratio = runs["candidate"]["wall_s"] / runs["baseline"]["wall_s"]
    print(f"ratio candidate / baseline: {ratio:.2f}")
    rules = sorted(set(runs["baseline"]["rules"]) | set(runs["candidate"]["rules"]))
    print(f"{'rule':24s} {'baseline jobs/s':>18s} {'candidate jobs/s':>18s}")
    for rule in rules:
        cells = []
        for name in ("baseline", "candidate"):
            jobs, seconds = runs[name]["rules"].get(rule, [0, 0.0])
            cells.append(f"{int(jobs):4d} {seconds:8.1f} s")
        print(f"{rule:24s} {cells[0]:>18s} {cells[1]:>18s}")
    if args.json:
        args.json.write_text(json.dumps(runs | {"ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
