"""What Table 1 found, as numbers that the report turns into sentences: how far the generator's
bottleneck alone moves each judge (held-out reals against the same reals through it), what share
of the real AD-CN anatomy the generated sets reproduce, and whether the judges agree that a
condition's AD images differ from its CN images. Computed here; ``report`` only words them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainmr.evaluate.ceiling import is_ceiling
from brainmr.evaluate.outliers import REAL_CONDITION
from brainmr.evaluate.stats import mean_interval, paired_seed_test

ANATOMY = "ventricle_area_mm2"  # the measure the sentences quote (the others are in the table)


def ad_fraction(row: pd.Series | dict, group: str, judge: str) -> float:
    """The seed-level share of a set's images that a judge calls AD (likelihood: the verdict,
    read off the misclassified fraction of the set's own class)."""
    if judge == "cnn":
        return float(row["predicted_AD_seed_mean"])
    wrong = float(row["misclassified_seed_mean"])
    return 1.0 - wrong if group == "AD" else wrong


def _summary_row(summary: pd.DataFrame, condition: str, group: str) -> pd.Series:
    part = summary[(summary["condition"] == condition) & (summary["group"] == group)]
    if len(part) != 1:
        raise ValueError(f"summary: expected one row for {condition}/{group}, got {len(part)}")
    return part.iloc[0]


def ceiling_shifts(summary: pd.DataFrame) -> list[dict]:
    """Per ceiling set and class: each judge on the held-out reals and on the same reals through
    the bottleneck, and the move between them."""
    out = []
    for condition in dict.fromkeys(summary["condition"]):
        if not is_ceiling(condition):
            continue
        for group in ("AD", "CN"):
            real = _summary_row(summary, REAL_CONDITION, group)
            through = _summary_row(summary, condition, group)
            row = {"ceiling": condition, "group": group}
            for judge in ("cnn", "likelihood"):
                before, after = ad_fraction(real, group, judge), ad_fraction(through, group, judge)
                row |= {f"{judge}_AD_real": before, f"{judge}_AD_ceiling": after}
                row[f"{judge}_AD_shift"] = after - before
            before, after = float(real[f"{ANATOMY}_mean"]), float(through[f"{ANATOMY}_mean"])
            row |= {
                "anatomy_real": before,
                "anatomy_ceiling": after,
                "anatomy_shift": after - before,
            }
            row["in_distribution"] = bool(through.get("cnn_interpretable", False))
            out.append(row)
    return out


def judge_separation(by_seed: pd.DataFrame, morphometry: pd.DataFrame, condition: str) -> dict:
    """Whether each judge tells a generated condition's AD images from its CN images, seed by
    seed: the AD-minus-CN difference of the share called AD (CNN, likelihood) and of the
    ventricle area (morphometry), each with its t interval across seeds."""
    sets = by_seed[by_seed["condition"] == condition]
    ad = sets[sets["group"] == "AD"].set_index("seed")
    cn = sets[sets["group"] == "CN"].set_index("seed").reindex(ad.index)
    out = {"condition": condition}
    shares = {
        "cnn": (ad["predicted_AD"] / ad["n"], cn["predicted_AD"] / cn["n"]),
        "likelihood": (1 - ad["misclassified"] / ad["n"], cn["misclassified"] / cn["n"]),
    }
    for judge, (ad_share, cn_share) in shares.items():
        test = paired_seed_test(cn_share.to_numpy(float), ad_share.to_numpy(float))
        out[judge] = {k: test[k] for k in ("difference", "low", "high", "p_value")}
        out[judge]["interpretable"] = bool(sets["cnn_interpretable"].all()) or judge != "cnn"
    rows = morphometry[(morphometry["measure"] == ANATOMY) & (morphometry["source"] == condition)]
    per_seed = rows[rows["seed"].astype(str) != "all"]["difference"].to_numpy(float)
    stats = mean_interval(per_seed)
    out["morphometry"] = {"difference": stats["mean"], "low": stats["low"], "high": stats["high"]}
    for judge in ("cnn", "likelihood", "morphometry"):
        low = out[judge]["low"]
        out[judge]["separates"] = bool(np.isfinite(low) and low > 0)
    return out


def anatomy_reproduced(morphometry: pd.DataFrame) -> list[dict]:
    """The across-seed share of the held-out reals' AD-CN ventricle difference per set."""
    rows = morphometry[
        (morphometry["measure"] == ANATOMY) & (morphometry["seed"].astype(str) == "all")
    ]
    keys = ("source", "difference", "low", "high", "fraction_reproduced")
    return [
        {k: r[k] for k in keys}
        | {"fraction_low": r["fraction_low"], "fraction_high": r["fraction_high"]}
        for r in rows.to_dict(orient="records")
    ]


def findings(
    *, summary: pd.DataFrame, by_seed: pd.DataFrame, morphometry: pd.DataFrame, conditions: list
) -> dict:
    return {
        "anatomy_measure": ANATOMY,
        "ceiling": ceiling_shifts(summary),
        "anatomy": anatomy_reproduced(morphometry),
        "separation": [judge_separation(by_seed, morphometry, c) for c in conditions],
    }
