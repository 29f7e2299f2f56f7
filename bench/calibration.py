"""Calibration of Table 1's judges and intervals by simulation with known answers, at the demo's
sizes and at the paper's (300 AD / 400 CN, config/adni.yaml's split fractions, images and seeds).

    python bench/calibration.py [--quick] [--json bench/measured/calibration.json]

Prints one table (nominal and achieved figure with a Monte-Carlo interval per judge and case),
writes it as JSON, and exits 1 when a figure misses its goal (rows with a known limit at that
scale are marked and do not fail). The simulations are brainmr.evaluate.studies.calibration's."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from _common import machine, write_json  # bench/ is this script's folder

from brainmr.evaluate.studies.calibration import calibrate, scale_from_config

REPO = Path(__file__).resolve().parents[1]
FULL = {"guard": 200, "intervals": 2000, "age": 200, "tests": 1000}
QUICK = {"guard": 20, "intervals": 200, "age": 20, "tests": 200}
PAPER_COHORT = (300, 400)  # the paper's AD and CN subjects


def verdict(row) -> str:
    if row.goal == "—":
        return "for comparison"
    if row.passes:
        return "pass (conservative)" if row.conservative else "pass"
    return "known limit" if row.known_limit else "FAIL"


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The printed table: achieved with its Monte-Carlo interval, and the verdict."""
    out = table.assign(
        achieved=[
            f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
            for a, lo, hi in zip(table.achieved, table.mc_low, table.mc_high, strict=True)
        ],
        verdict=[verdict(r) for r in table.itertuples()],
    )
    return out[["scale", "judge", "case", "goal", "achieved", "replicates", "verdict"]]


def markdown(show: pd.DataFrame) -> str:
    head = "| " + " | ".join(show.columns) + " |\n|" + "---|" * len(show.columns) + "\n"
    return head + "".join("| " + " | ".join(map(str, r)) + " |\n" for r in show.to_numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few replicates (tests)")
    parser.add_argument("--json", type=Path, default=REPO / "bench/measured/calibration.json")
    args = parser.parse_args(argv)
    reps = QUICK if args.quick else FULL
    scales = [
        scale_from_config("demo", REPO / "config/config.yaml"),
        scale_from_config("paper", REPO / "config/adni.yaml", *PAPER_COHORT),
    ]
    start = time.perf_counter()
    table = calibrate(scales, reps, guard_draws=100, n_boot=500)
    seconds = time.perf_counter() - start
    failed = table[~table["passes"] & (table["known_limit"] == "")]
    show = shown(table)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(show.to_string(index=False))
    args.json.with_suffix(".md").write_text(markdown(show), encoding="utf-8")
    for row in table[table["known_limit"] != ""].itertuples():
        print(f"known limit ({row.scale}, {row.judge}, {row.case}): {row.known_limit}")
    print(f"{len(table)} figures, {len(failed)} missed their goal; {seconds:.0f} s on {machine()}")
    write_json(
        args.json,
        {
            "command": "python bench/calibration.py" + (" --quick" if args.quick else ""),
            "replicates": reps,
            "seconds": round(seconds, 1),
            "rows": table.to_dict(orient="records"),
        },
    )
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
