"""The calibration harness (brainmr.evaluate.studies.calibration, bench/calibration.py) in small:
every
judge and interval at the demo's and the paper's sizes meets its goal within Monte-Carlo error,
and the harness itself tells a broken judge from a sound one."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from brainmr.evaluate.studies import calibration
from brainmr.evaluate.studies.calibration import Scale, calibrate, scale_from_config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))


@pytest.fixture(scope="module")
def scales():
    return [
        scale_from_config("demo", REPO / "config/config.yaml"),
        scale_from_config("paper", REPO / "config/adni.yaml", 300, 400),
    ]


def test_scales_follow_the_configs_split_functions(scales):
    demo, paper = scales
    assert demo.split_counts() == {"test": {"AD": 4, "CN": 5}, "val": {"AD": 2, "CN": 2}}
    assert paper.split_counts() == {"test": {"AD": 60, "CN": 80}, "val": {"AD": 48, "CN": 64}}
    assert (paper.n_images, paper.n_seeds) == (100, 3)


def test_reduced_calibration_passes_at_both_scales(scales):
    table = calibrate(scales, {"guard": 6, "intervals": 150, "age": 8, "tests": 150}, 40, 200)
    assert set(table["scale"]) == {"demo", "paper"}
    failed = table[~table["passes"] & (table["known_limit"] == "")]
    assert failed.empty, failed[["scale", "judge", "case", "achieved", "mc_low", "mc_high"]]
    guard = table[table["judge"] == "guard"].set_index(["scale", "case"])
    for scale in ("demo", "paper"):  # faithful sets pass and broken ones are flagged, always
        assert guard.loc[(scale, "faithful AD set flagged"), "achieved"] == 0
        assert guard.loc[(scale, "one image repeated flagged"), "achieved"] == 1


def test_the_harness_fails_a_broken_judge(monkeypatch):
    """A guard that flags every set, and an interval half as wide as it should be, miss their
    goals: the harness can fail."""
    scale = Scale("paper", 300, 400, 0.2, 0.2, 100, 3)
    monkeypatch.setattr(calibration, "guard_verdict", lambda figures, fraction: (True, "x"))
    guard = pd.DataFrame(calibration.guard_rows(scale, reps=5, draws=10)).set_index("case")
    assert not guard.loc["faithful AD set flagged", "passes"]
    sound = calibration.mean_interval

    def half_width(values, confidence=0.95, bounds=None):
        out = sound(values, confidence, bounds)
        quarter = (out["high"] - out["low"]) / 4
        return out | {"low": out["mean"] - quarter, "high": out["mean"] + quarter}

    monkeypatch.setattr(calibration, "mean_interval", half_width)
    rows = pd.DataFrame(calibration.seed_fraction_rows(scale, reps=400)).set_index("case")
    assert not rows.loc["share called AD, p = 0.3", "passes"]


def test_the_script_writes_its_table(tmp_path, capsys):
    import calibration as script  # bench/calibration.py

    code = script.main(["--quick", "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert "faithful AD set flagged" in out and "missed their goal" in out
    assert (tmp_path / "c.json").is_file() and code == 0


def test_make_calibration_runs_the_script():
    """The README's `make calibration` is this script, run in full."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    target = makefile.split("\ncalibration: setup\n", 1)[1].splitlines()[0]
    assert target.strip() == "$(BIN)/python bench/calibration.py"


def test_docs_show_the_measured_calibration_table():
    """docs/methods.md shows the table bench/calibration.py last wrote, row for row."""
    table = (REPO / "bench/measured/calibration.md").read_text(encoding="utf-8").splitlines()
    docs = (REPO / "docs/methods.md").read_text(encoding="utf-8")
    assert len(table) > 40 and all(row in docs for row in table)
