"""The sizes a calibration runs at (the demo's or the paper's cohort, split, images per set and
seeds) and the row every calibration figure is reported in
(brainmr.evaluate.studies.calibration)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from brainmr import GROUPS
from brainmr.cohort.loni import assign_split
from brainmr.evaluate.judges.classifier import split_subjects
from brainmr.evaluate.stats.intervals import wilson_interval

COVERAGE_SLACK = 0.02  # "within 2 points of nominal"


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: the cohort, its held-out reals, the CNN's validation reals, the
    images per set and the replicate seeds."""

    name: str
    n_ad: int
    n_cn: int
    test_fraction: float
    val_fraction: float
    n_images: int
    n_seeds: int

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Held-out (test) and CNN-validation subjects per class, by the package's own split
        functions (cohort.loni.assign_split, evaluate.classifier.split_subjects)."""
        subjects = [f"S{i}" for i in range(self.n_ad + self.n_cn)]
        cohort = pd.DataFrame(
            {"subject": subjects, "group": ["AD"] * self.n_ad + ["CN"] * self.n_cn}
        )
        cohort = assign_split(cohort, self.test_fraction, seed=0)
        train = cohort[cohort["split"] == "train"]
        val = train[split_subjects(train, self.val_fraction, seed=0)]
        test = cohort[cohort["split"] == "test"]
        return {
            "test": {g: int((test["group"] == g).sum()) for g in GROUPS},
            "val": {g: int((val["group"] == g).sum()) for g in GROUPS},
        }


def scale_from_config(name: str, config: Path, n_ad: int | None = None, n_cn: int | None = None):
    """A scale from a config file (the demo's cohort sizes are in it; ADNI's are given)."""
    cfg = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    demo = cfg.get("demo", {})
    return Scale(
        name=name,
        n_ad=int(n_ad if n_ad is not None else demo["n_ad"]),
        n_cn=int(n_cn if n_cn is not None else demo["n_cn"]),
        test_fraction=float(cfg["cohort"]["test_fraction"]),
        val_fraction=float(cfg.get("evaluate", {}).get("cnn_val_fraction", 0.2)),
        n_images=int(cfg["generate"]["n_images"]),
        n_seeds=len(cfg["seeds"]),
    )


def calibration_row(scale, judge, case, hits, reps, nominal, goal, note="", limit="") -> dict:
    """One table row: achieved = hits / reps with its Wilson Monte-Carlo interval; ``goal``:
    ("cover", nominal), ("at most", x) or ("at least", x). ``limit``: why the goal is out of
    reach at this scale, where that is known and the tables mark it (such a row does not fail
    the run)."""
    low, high = wilson_interval(int(hits), int(reps)) if reps else (math.nan, math.nan)
    kind, level = goal
    conservative = False
    if kind == "for comparison":  # a figure beside the others, with no goal of its own
        passes, goal_text = True, "—"
    elif kind == "cover":
        # below nominal is the failure that misleads; above it, the row says "conservative"
        passes = high >= level - COVERAGE_SLACK
        conservative = low > level + COVERAGE_SLACK
        goal_text = f"{level:.2f} ± {COVERAGE_SLACK:.2f}"
    elif kind == "at most":
        passes, goal_text = low <= level, f"≤ {level:.2f}"
    else:
        passes, goal_text = high >= level, f"≥ {level:.2f}"
    return {
        "scale": scale.name,
        "judge": judge,
        "case": case,
        "nominal": nominal,
        "achieved": hits / reps if reps else math.nan,
        "mc_low": low,
        "mc_high": high,
        "replicates": int(reps),
        "goal": goal_text,
        "passes": bool(passes and reps > 0),
        "conservative": bool(conservative),
        "note": note,
        "known_limit": limit,
    }
