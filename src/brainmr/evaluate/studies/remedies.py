"""The remedies study: does a remedy make DreamBooth's generated AD images AD, without turning
its CN images into AD too?

For each remedy condition and each class of generated images, two fractions of the images that
are not outliers: predicted AD by the CNN, and AD by likelihood (log-likelihood under the AD KDE
above that under the CN KDE). The seed is the unit: a seed's images come from one DreamBooth
model, so they are not independent (with 100 images a seed, a within-seed correlation of 0.02
triples the variance of a pooled fraction). The headline is therefore the mean across seeds of
the per-seed fraction with a Student-t 95% interval, and a remedy's effect is the mean of its
per-seed differences from the baseline (same seed) with a paired t interval and p-value, the
smallest difference those seeds could detect at 80% power, and whether every seed agrees in
sign. Pooled counts with a Wilson interval and Fisher's exact test stay as secondary
``pooled_*`` columns (images treated as independent). The CNN's fraction carries the set's
out-of-distribution flag: where any seed's set is out of the CNN's distribution, its CNN
figures say nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.stats.intervals import seed_fraction_summary
from brainmr.evaluate.stats.tests import fisher_test, paired_seed_test, sign_agreement
from brainmr.io import as_bool

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
    summary = seed_fraction_summary(part[measure].to_numpy(int), part["n"].to_numpy(int))
    return {
        "seed_mean": summary["mean"],
        "seed_sd": summary["sd"],
        "seed_low": summary["low"],
        "seed_high": summary["high"],
        "pooled_k": summary["pooled_k"],
        "pooled_n": summary["pooled_n"],
        "pooled_fraction": summary["pooled"],
        "pooled_low": summary["pooled_low"],
        "pooled_high": summary["pooled_high"],
        "per_seed": ", ".join(
            f"{int(a)}/{int(b)}" for a, b in zip(part[measure], part["n"], strict=True)
        ),
    }


def _effect_row(part: pd.DataFrame, base: pd.DataFrame, measure: str, row: dict) -> dict:
    """Remedy minus baseline: paired over the seeds both have (headline), and on pooled counts
    (secondary; Fisher's odds ratio is odds(remedy) / odds(baseline), the effect's direction)."""
    b = _fraction_row(base, measure)
    fisher = fisher_test(row["pooled_k"], row["pooled_n"], b["pooled_k"], b["pooled_n"])
    paired = part.merge(base, on="seed", suffixes=("", "_base"))
    remedy = (paired[measure] / paired["n"].replace(0, np.nan)).to_numpy(float)
    baseline = (paired[f"{measure}_base"] / paired["n_base"].replace(0, np.nan)).to_numpy(float)
    test = paired_seed_test(baseline, remedy)
    return {
        "effect": test["difference"],
        "effect_low": test["low"],
        "effect_high": test["high"],
        "p_value": test["p_value"],
        "detectable": test["detectable"],
        "paired_seeds": test["n"],
        "note": test["note"],
        "sign_per_seed": sign_agreement(remedy - baseline),
        "pooled_effect": row["pooled_fraction"] - b["pooled_fraction"],
        "pooled_p_value": fisher["p_value"],
        "pooled_odds_ratio": fisher["odds_ratio"],
    }


def compare_remedies(by_seed: pd.DataFrame, baseline: str, remedies: list[str]) -> pd.DataFrame:
    """One row per (condition, class of images, measure): the baseline's rows and each remedy's.
    Headline: seed_mean [seed_low, seed_high] and, for a remedy, effect [effect_low,
    effect_high], p_value (paired t over seeds), detectable and sign_per_seed. Secondary,
    images treated as independent: pooled_k/pooled_n, pooled_fraction [pooled_low,
    pooled_high], pooled_effect, pooled_p_value and pooled_odds_ratio (Fisher)."""
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
                    flags = as_bool(part["cnn_interpretable"], "cnn_interpretable")
                    row["interpretable"] = bool(flags.all())
                else:
                    row["interpretable"] = True  # the KDE verdict is checked on held-out reals
                if condition != baseline:
                    row |= _effect_row(part, base, measure, row)
                rows.append(row)
    return pd.DataFrame(rows)


def summarise_remedies(*, by_seed: Path, baseline: str, remedies: list[str], out: Path) -> None:
    table = compare_remedies(io.read_tsv(by_seed), baseline, remedies)
    io.write_tsv(out, table)
    log.info("remedies: %d remedies against %s", len(remedies), baseline)
