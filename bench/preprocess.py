"""Benchmark of preprocessing on demo heads written by write_demo_scan.

    python bench/preprocess.py [--subjects 3] [--threads 1 2] [--json results/bench/preprocess.json]

1. Whole jobs, as Snakemake runs them: each job is a fresh ``python`` process that imports
   brainmr, preprocesses one subject and exits (start-up, imports and deepbet's weights
   included); one job alone, then as many at once as the cores hold (2 on a 2-core machine)
   -- the oversubscription figure. Each --threads count runs capped (``preprocess_scan(...,
   threads=n)``, what the rule does with ``snakemake.threads``); "default" runs every library at
   its own default (all cores) with the thread environment variables removed. Per job: wall
   seconds, CPU seconds (user + sys) and the threads the process ended with.
2. Per stage (load, strip, register, slice), several subjects in one process per thread count:
   "setup" is the process's one-off cost (imports, the template, deepbet's weights); the first
   subject also pays deepbet's first (TorchScript-optimising) run. A job takes about setup +
   one subject.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import machine, write_json
from dryrun import time_dry_run

STAGES = ("load", "strip", "register", "slice")
# One Snakemake-like job: a fresh interpreter preprocesses one scan and prints, as one JSON line,
# its stage seconds, its CPU seconds and how many threads it ended with.
JOB = """
import json, resource, sys
from pathlib import Path
from brainmr.config import stage_config
from brainmr.preprocess.config import PreprocessConfig
from brainmr.preprocess.scan import preprocess_scan
scan, out, threads, strip = sys.argv[1:5]
seconds = preprocess_scan(
    Path(scan),
    subject="bench",
    cfg=stage_config(PreprocessConfig, "preprocess", skull_strip=strip),
    slice_npy=Path(out, "slice.npy"),
    slice_png=Path(out, "slice.png"),
    qc_png=Path(out, "qc.png"),
    transform=Path(out, "rigid.tfm"),
    threads=None if threads == "default" else int(threads),
)
usage = resource.getrusage(resource.RUSAGE_SELF)
status = Path("/proc/self/status").read_text().splitlines()
n = int(next(line.split()[1] for line in status if line.startswith("Threads:")))
print(json.dumps({"stages": seconds, "cpu_s": usage.ru_utime + usage.ru_stime, "threads": n}))
"""


def time_jobs(scans: list[str], threads: str, at_once: int, strip: str, out: Path) -> list[dict]:
    """Start ``at_once`` jobs together (fresh processes, one scan each, the thread environment
    variables removed) and time each from the common start to its exit."""
    from brainmr.threads import THREAD_ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, scans[n % len(scans)], str(out / f"{n}"), threads, strip],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(at_once)
    ]

    def finish(proc: subprocess.Popen) -> dict:
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"preprocessing job failed ({proc.returncode}):\n{stderr[-3000:]}")
        return json.loads(stdout.strip().splitlines()[-1]) | {"wall_s": wall}

    with ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(finish, procs))


def job_figures(scans: list[str], modes: list[str], strip: str) -> list[dict]:
    """Per thread mode: one job alone, then as many at once as the cores hold (at least 2 for
    "default", whose libraries each take every core: the oversubscribed case)."""
    cores = os.cpu_count() or 1
    rows = []
    print(
        f"\nwhole jobs (fresh process per subject, skull strip {strip}, {cores} cores):\n"
        f"{'threads':>8} {'at once':>8} {'wall s/job':>11} {'CPU s/job':>10} "
        f"{'threads/proc':>13} {'subjects/min':>13}"
    )
    for mode in modes:
        together = max(2, cores) if mode == "default" else max(1, cores // int(mode))
        for at_once in sorted({1, together}):
            with tempfile.TemporaryDirectory() as tmp:
                jobs = time_jobs(scans, mode, at_once, strip, Path(tmp))
            row = {
                "threads": mode,
                "at_once": at_once,
                "wall_s": float(np.mean([j["wall_s"] for j in jobs])),
                "cpu_s": float(np.mean([j["cpu_s"] for j in jobs])),
                "process_threads": max(j["threads"] for j in jobs),
                "subjects_per_min": 60 * at_once / max(j["wall_s"] for j in jobs),
                "jobs": jobs,
            }
            rows.append(row)
            print(
                f"{mode:>8} {at_once:>8} {row['wall_s']:>11.2f} {row['cpu_s']:>10.2f} "
                f"{row['process_threads']:>13} {row['subjects_per_min']:>13.2f}",
                flush=True,
            )
    return rows


def run_subjects(scans: list[str], threads: int, strip: str) -> dict:
    """Preprocess ``scans`` in this (fresh) process; seconds of setup and per subject per stage."""
    start = time.perf_counter()
    from brainmr.config import stage_config
    from brainmr.preprocess.config import PreprocessConfig
    from brainmr.preprocess.register import _fixed_images, template_grid
    from brainmr.preprocess.scan import preprocess_scan, set_threads
    from brainmr.preprocess.skullstrip import _deepbet_model

    cfg = stage_config(PreprocessConfig, "preprocess", skull_strip=strip)
    set_threads(threads, cfg)
    template_grid()
    _fixed_images(float(cfg.registration_mm))
    if strip == "deepbet":
        _deepbet_model()
    setup = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, scan in enumerate(scans):
            out = Path(tmp) / f"s{n}"
            seconds = preprocess_scan(
                Path(scan),
                subject=f"bench{n}",
                cfg=cfg,
                slice_npy=out / "slice.npy",
                slice_png=out / "slice.png",
                qc_png=out / "qc.png",
                transform=out / "rigid.tfm",
                threads=threads,
            )
            rows.append(seconds | {"total": sum(seconds.values())})
    return {"setup_s": setup, "subjects": rows}


def summarise(rows: list[dict]) -> dict:
    keys = (*STAGES, "total")
    return {
        "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
        "max": {k: float(np.max([r[k] for r in rows])) for k in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--no-default", action="store_true", help="skip the jobs at the libraries' defaults"
    )
    parser.add_argument("--strip", default="deepbet", choices=["deepbet", "none"])
    parser.add_argument("--voxel-mm", type=float, default=None, help="default: the demo's")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dry-run-subjects", type=int, default=700)
    args = parser.parse_args()

    from brainmr.cohort.synth import write_demo_scan
    from brainmr.config import schema_defaults

    voxel_mm = args.voxel_mm or schema_defaults("demo")["voxel_mm"]
    print(f"machine: {machine()}")
    figures: dict = {"subjects": args.subjects, "voxel_mm": voxel_mm, "strip": args.strip}
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        scans, synth_s = [], []
        for n in range(args.subjects):
            scan = Path(tmp) / f"demo{n}.nii.gz"
            start = time.perf_counter()
            write_demo_scan(
                scan, group="AD" if n % 2 else "CN", atrophy=1.0, voxel_mm=voxel_mm, seed=n
            )
            synth_s.append(time.perf_counter() - start)
            scans.append(str(scan))
        print(
            f"write_demo_scan ({voxel_mm} mm): first {synth_s[0]:.2f} s "
            "(builds the template head), "
            f"then mean {np.mean(synth_s[1:] or synth_s):.2f} s per head"
        )
        figures["write_demo_scan_s"] = synth_s
        modes = [str(t) for t in args.threads] + ([] if args.no_default else ["default"])
        figures["jobs"] = job_figures(scans, modes, args.strip)
        for threads in args.threads:
            with context.Pool(1) as pool:
                result = pool.apply(run_subjects, (scans, threads, args.strip))
            summary = summarise(result["subjects"])
            figures[f"threads_{threads}"] = result | summary
            print(
                f"\n{threads} thread(s), skull strip {args.strip}: "
                f"setup {result['setup_s']:.2f} s per job"
            )
            print("subject " + "".join(f"{k:>10}" for k in (*STAGES, "total")))
            for n, row in enumerate(result["subjects"]):
                print(f"{n:>7} " + "".join(f"{row[k]:>10.2f}" for k in (*STAGES, "total")))
            for stat in ("mean", "max"):
                print(
                    f"{stat:>7} "
                    + "".join(f"{summary[stat][k]:>10.2f}" for k in (*STAGES, "total"))
                )
            per_job = result["setup_s"] + summary["mean"]["total"]
            print(f"one subject per job: ~{per_job:.1f} s (setup + mean)")
            figures[f"threads_{threads}"]["per_job_s"] = per_job
    # the workers have exited: the largest of them is the peak of one preprocessing job
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(f"peak memory (max RSS of a worker): {figures['peak_rss_mb']} MB")
    try:
        dry = statistics.median(time_dry_run(args.dry_run_subjects, 2, repeat=3))
    except subprocess.CalledProcessError as err:  # keep the figures above; fail at the end
        tail = (err.stdout or b"").decode()[-1500:] + (err.stderr or b"").decode()[-1500:]
        print(f"dry run of the whole DAG FAILED (exit {err.returncode}):\n{tail}")
        figures["dry_run_s"] = None
        write_json(args.json, figures)
        raise SystemExit(1) from err
    figures["dry_run_s"] = round(dry, 2)
    figures["dry_run_subjects"] = args.dry_run_subjects
    print(
        f"dry run of the whole DAG, ADNI-like sheet of {args.dry_run_subjects} subjects x 2 "
        f"conditions: {dry:.2f} s"
    )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
