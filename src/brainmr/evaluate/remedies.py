"""The remedies study: does a remedy make DreamBooth's generated AD images AD, without turning
its CN images into AD too?

For each remedy condition and each class of generated images, two fractions of the images that
are not outliers: predicted AD by the CNN, and AD by likelihood (log-likelihood under the AD KDE
above that under the CN KDE). Each fraction comes as its mean across replicate seeds with a
Student-t 95% interval, and pooled over seeds with a Wilson 95% interval. The effect of a remedy
is its pooled fraction minus the baseline's, tested by Fisher's exact test on the pooled counts,
with whether every seed agrees in sign. The CNN's fraction carries the set's out-of-distribution
flag: where any seed's set is out of the CNN's distribution, its CNN figures say nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.stats import fisher_test, mean_interval, sign_agreement, wilson_interval

log = logging.getLogger(__name__)

# measure -> how its "AD" count is read off a by-seed row of Table 1
MEASURES = ("cnn_AD", "likelihood_AD")


def ad_counts(by_seed: pd.DataFrame) -> pd.DataFrame:
    """Per seed and set: images judged AD by the CNN and by likelihood, out of ``n`` (outliers
    removed). A set's likelihood misclassifications are AD verdicts for CN images and CN verdicts
    for AD images."""
    sets = by_seed[by_seed["group"].isin(GROUPS)].copy()
    sets["cnn_AD"] = sets["predicted_AD"].astype(int)
    misclassified = sets["misclassified"].astype(int)
    sets["likelihood_AD"] = np.where(
        sets["group"] == "AD", sets["n"].astype(int) - misclassified, misclassified
    )
    columns = ["seed", "condition", "group", "n", "cnn_AD", "likelihood_AD", "cnn_interpretable"]
    return sets[columns].reset_index(drop=True)


def _fraction_row(part: pd.DataFrame, measure: str) -> dict:
    n = int(part["n"].sum())
    k = int(part[measure].sum())
    low, high = wilson_interval(k, n)
    per_seed = part[measure] / part["n"].replace(0, np.nan)
    across = mean_interval(per_seed.to_numpy(float))
    return {
        "k": k,
        "n": n,
        "fraction": k / n if n else np.nan,
        "pooled_low": low,
        "pooled_high": high,
        "seed_mean": across["mean"],
        "seed_low": across["low"],
        "seed_high": across["high"],
        "per_seed": ", ".join(
            f"{int(a)}/{int(b)}" for a, b in zip(part[measure], part["n"], strict=True)
        ),
    }


def compare_remedies(by_seed: pd.DataFrame, baseline: str, remedies: list[str]) -> pd.DataFrame:
    """One row per (condition, class of images, measure): the baseline's rows and each remedy's,
    with the effect against the baseline, Fisher's p-value and the per-seed sign agreement."""
    counts = ad_counts(by_seed)
    missing = [c for c in [baseline, *remedies] if c not in set(counts["condition"])]
    if missing:
        raise ValueError(f"remedies: no Table 1 rows for condition(s) {missing}")
    rows = []
    for condition in [baseline, *remedies]:
        for group in GROUPS:
            part = counts[(counts["condition"] == condition) & (counts["group"] == group)]
            base = counts[(counts["condition"] == baseline) & (counts["group"] == group)]
            for measure in MEASURES:
                row = {
                    "condition": condition,
                    "role": "baseline" if condition == baseline else "remedy",
                }
                row |= {"images": group, "measure": measure, "seeds": len(part)}
                row |= _fraction_row(part, measure)
                if measure == "cnn_AD":
                    flags = part["cnn_interpretable"].astype(bool)
                    row["interpretable"] = bool(flags.all())
                else:
                    row["interpretable"] = True  # the KDE verdict is checked on held-out reals
                if condition != baseline:
                    b = _fraction_row(base, measure)
                    test = fisher_test(row["k"], row["n"], b["k"], b["n"])
                    paired = part.merge(base, on="seed", suffixes=("", "_base"))
                    diffs = paired[measure] / paired["n"].replace(0, np.nan) - paired[
                        f"{measure}_base"
                    ] / paired["n_base"].replace(0, np.nan)
                    row |= {
                        "effect": row["fraction"] - b["fraction"],
                        "p_value": test["p_value"],
                        "odds_ratio": test["odds_ratio"],
                        "sign_per_seed": sign_agreement(diffs),
                    }
                rows.append(row)
    return pd.DataFrame(rows)


def summarise_remedies(*, by_seed: Path, baseline: str, remedies: list[str], out: Path) -> None:
    table = compare_remedies(io.read_tsv(by_seed), baseline, remedies)
    io.write_tsv(out, table)
    log.info("remedies: %d remedies against %s", len(remedies), baseline)
