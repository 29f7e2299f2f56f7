"""Benchmark of preprocessing: seconds per subject per stage (load, strip, register, slice) on
demo heads written by write_demo_scan, with SimpleITK and torch capped at 1 thread (one core)
and optionally more.

    python bench/preprocess.py [--subjects 3] [--threads 1 2] [--json results/bench/preprocess.json]

Each thread count runs in a fresh process, like one Snakemake job: "setup" is its one-off cost
(imports, the template, deepbet's weights), paid once per job; the first subject also pays
deepbet's first (TorchScript-optimising) run. A job that preprocesses one subject takes about
setup + the subject's total.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, write_json
from dryrun import time_dry_run

STAGES = ("load", "strip", "register", "slice")


def run_subjects(scans: list[str], threads: int, strip: str) -> dict:
    """Preprocess ``scans`` in this (fresh) process; seconds of setup and per subject per stage."""
    start = time.perf_counter()
    from brainmr.config import stage_config
    from brainmr.preprocess import PreprocessConfig, preprocess_scan
    from brainmr.preprocess.register import _fixed_images, template_grid
    from brainmr.preprocess.scan import set_threads
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
    parser.add_argument("--strip", default="deepbet", choices=["deepbet", "none"])
    parser.add_argument("--voxel-mm", type=float, default=None, help="default: the demo's")
    parser.add_argument("--json", type=Path, default=None)
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
    dry = statistics.median(time_dry_run(700, 2, repeat=3))
    figures["dry_run_700_subjects_s"] = round(dry, 2)
    print(f"dry run of the whole DAG, ADNI-like sheet of 700 subjects x 2 conditions: {dry:.2f} s")
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
