"""Dry-run time of the whole DAG for an ADNI-like sheet of 700 subjects (paper: 300 AD + 400 CN).

Builds a LONI-style collection CSV and download folder (placeholder NIfTI files) in a temporary
folder, points config/adni.yaml at it, and times `snakemake -n` (parse, ingest, DAG) end to end.

    .venv/bin/python bench/dryrun.py [--subjects 700] [--conditions 2] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import machine, write_json

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def make_adni_tree(root: Path, n_subjects: int) -> Path:
    lines = [
        '"Image Data ID","Subject","Group","Sex","Age","Visit","Modality","Description","Type",'
        '"Acq Date","Format","Downloaded"'
    ]
    for i in range(n_subjects):
        subject = f"{i % 900 + 2:03d}_S_{i + 1000:04d}"
        group = "AD" if i < n_subjects * 3 // 7 else "CN"
        image_id = 100000 + i
        lines.append(
            f'"{image_id}","{subject}","{group}","F","75","sc","MRI","MPRAGE","Original",'
            f'"6/{i % 28 + 1}/2012","NiFTI","11/20/2026"'
        )
        date = f"2012-06-{i % 28 + 1:02d}_10_00_00.0"
        folder = root / "ADNI" / subject / "MPRAGE" / date / f"I{image_id}"
        folder.mkdir(parents=True)
        (folder / f"ADNI_{subject}_MR_MPRAGE_I{image_id}.nii").write_bytes(b"\0")
    csv = root / "collection.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def time_dry_run(n_subjects: int, n_conditions: int, repeat: int) -> list[float]:
    """Seconds of `snakemake -n` on an ADNI-like sheet of ``n_subjects``, ``repeat`` times."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = make_adni_tree(tmp / "adni", n_subjects)
        config = yaml.safe_load((REPO / "config/adni.yaml").read_text())
        config["cohort"] |= {"collection_csv": str(csv), "download_dir": str(tmp / "adni")}
        # adni.yaml's base_model is a placeholder path, and a local base is a checked input
        (tmp / "sd15").mkdir()
        config["base_model"] = str(tmp / "sd15")
        prompts = list(config["conditions"].values())
        config["conditions"] = {f"c{i}": prompts[i % len(prompts)] for i in range(n_conditions)}
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        (tmp / "work").mkdir()
        # configfile: in the Snakefile is read relative to the working directory
        (tmp / "work" / "config").symlink_to(REPO / "config")
        cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp / "work")]
        cmd += ["-n", "--quiet", "rules", "--configfile", str(tmp / "config.yaml")]
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=700)
    parser.add_argument("--conditions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    times = time_dry_run(args.subjects, args.conditions, args.repeat)
    figures = {
        "subjects": args.subjects,
        "conditions": args.conditions,
        "dry_run_s_median": round(statistics.median(times), 2),
        "dry_run_s_all": [round(t, 2) for t in times],
    }
    print(
        f"dry run, {args.subjects} subjects x {args.conditions} conditions: "
        f"{figures['dry_run_s_median']:.2f} s (median of {args.repeat}: {figures['dry_run_s_all']})"
    )
    print(f"machine: {machine()}")
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
