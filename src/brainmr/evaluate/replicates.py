"""Table 1's numbers per replicate seed, their summary across seeds, and the tests between
conditions that a conclusion needs.

Per seed and set: mean log-likelihoods, CNN counts and likelihood misclassifications of the images
that are not outliers (held-out reals too, under the same rule), the CNN's mean P(AD), and the
out-of-distribution flag of set_metrics. Across seeds: every mean as mean +/- sd with a Student-t
95% interval; every count pooled over seeds with a Wilson 95% interval (and one per seed); between
two conditions of one class, Fisher's exact test on the pooled counts and whether every seed
agrees in the sign of the difference.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from brainmr import GROUPS, io
from brainmr.evaluate.outliers import REAL_CONDITION
from brainmr.evaluate.stats import (
    bootstrap_binary_metrics,
    fisher_test,
    mean_interval,
    sign_agreement,
    wilson_interval,
)

log = logging.getLogger(__name__)

OUTLIER_SET = "outlier"  # the condition of the outlier row (all generated outliers of a seed)
MEANS = ("loglik_AD", "loglik_CN", "loglik_CN_minus_AD", "mean_prob_AD")
COUNTS = ("predicted_AD", "misclassified")


def other(group: str) -> str:
    (rest,) = [g for g in GROUPS if g != group]
    return rest


def set_row(part: pd.DataFrame, group: str | None) -> dict:
    """One set's numbers over the images of ``part`` (outliers already removed)."""
    n = len(part)
    row = {
        "n": n,
        "loglik_AD": float(part["loglik_AD"].mean()) if n else np.nan,
        "loglik_CN": float(part["loglik_CN"].mean()) if n else np.nan,
    }
    row["loglik_CN_minus_AD"] = row["loglik_CN"] - row["loglik_AD"]
    if group is None:
        return row
    return row | {
        "predicted_AD": int((part["predicted"] == "AD").sum()),
        "predicted_CN": int((part["predicted"] == "CN").sum()),
        "misclassified": int((part[f"loglik_{other(group)}"] > part[f"loglik_{group}"]).sum()),
        "mean_prob_AD": float(part["prob_AD"].mean()) if n else np.nan,
    }


def seed_rows(scores: pd.DataFrame, metrics: pd.DataFrame, seed: int, conditions: list[str]):
    """Table 1 of one seed: each (condition, group), the outlier row, the held-out real rows."""
    interpretable = {
        (r.condition, r.group): (bool(r.cnn_interpretable), str(r.ood_reason))
        for r in metrics.fillna({"ood_reason": ""}).itertuples()
    }
    rows = []
    for condition in [*conditions, REAL_CONDITION]:
        for group in GROUPS:
            part = scores[(scores["condition"] == condition) & (scores["group"] == group)]
            if part.empty:
                raise ValueError(f"seed {seed}: no scores for {condition}/{group}")
            kept = part[~part["outlier"]]
            ok, why = interpretable.get((condition, group), (True, ""))
            k = int(len(kept))
            row = set_row(kept, group)
            low, high = wilson_interval(row["predicted_AD"], k)
            m_low, m_high = wilson_interval(row["misclassified"], k)
            rows.append(
                {"seed": seed, "condition": condition, "group": group}
                | row
                | {"n_total": len(part), "n_outliers": int(part["outlier"].sum())}
                | {"predicted_AD_low": low, "predicted_AD_high": high}
                | {"misclassified_low": m_low, "misclassified_high": m_high}
                | {"cnn_interpretable": ok, "ood_reason": why}
            )
    outliers = scores[scores["outlier"] & (scores["condition"] != REAL_CONDITION)]
    rows.append(
        {"seed": seed, "condition": OUTLIER_SET, "group": ""}
        | set_row(outliers, None)
        | {"n_total": len(outliers), "n_outliers": len(outliers)}
    )
    return pd.DataFrame(rows)


def summarise(by_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per set across seeds: means with t intervals, pooled counts with Wilson ones."""
    rows = []
    for (condition, group), part in by_seed.groupby(["condition", "group"], sort=False):
        row = {"condition": condition, "group": group, "n_seeds": len(part)}
        row["n"] = int(part["n"].sum())
        row["n_outliers"] = int(part["n_outliers"].sum())
        for column in MEANS:
            if column in part and part[column].notna().any():
                stats = mean_interval(part[column].to_numpy(float))
                row |= {f"{column}_{k}": stats[k] for k in ("mean", "sd", "low", "high")}
        for column in COUNTS:
            if column in part and part[column].notna().any():
                k = int(part[column].sum())
                low, high = wilson_interval(k, row["n"])
                row |= {column: k, f"{column}_fraction": k / row["n"] if row["n"] else np.nan}
                row |= {f"{column}_low": low, f"{column}_high": high}
                row[f"{column}_per_seed"] = ", ".join(
                    f"{int(c)}/{int(n)}" for c, n in zip(part[column], part["n"], strict=True)
                )
        if "cnn_interpretable" in part and part["cnn_interpretable"].notna().any():
            flags = part["cnn_interpretable"].astype(bool)
            row["cnn_interpretable_seeds"] = int(flags.sum())
            row["cnn_interpretable"] = bool(flags.all())
            row["ood_reason"] = "; ".join(
                f"seed {s}: {r}"
                for s, r, ok in zip(part["seed"], part["ood_reason"], flags, strict=True)
                if not ok
            )
        rows.append(row)
    return pd.DataFrame(rows)


def compare_conditions(by_seed: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """Between two conditions of one class: Fisher's exact test on pooled counts of predicted AD
    and of likelihood misclassifications, and the sign of the difference in each seed."""
    rows = []
    for group in GROUPS:
        for first, second in itertools.combinations(conditions, 2):
            a = by_seed[(by_seed["condition"] == first) & (by_seed["group"] == group)]
            b = by_seed[(by_seed["condition"] == second) & (by_seed["group"] == group)]
            merged = a.merge(b, on="seed", suffixes=("_a", "_b"))
            for column in COUNTS:
                k1, n1 = int(a[column].sum()), int(a["n"].sum())
                k2, n2 = int(b[column].sum()), int(b["n"].sum())
                test = fisher_test(k1, n1, k2, n2)
                per_seed = merged[f"{column}_b"] / merged["n_b"] - merged[f"{column}_a"] / merged[
                    "n_a"
                ].replace(0, np.nan)
                rows.append(
                    {"group": group, "measure": column, "condition_a": first}
                    | {"condition_b": second, "k_a": k1, "n_a": n1, "k_b": k2, "n_b": n2}
                    | {"fraction_a": k1 / n1 if n1 else np.nan}
                    | {"fraction_b": k2 / n2 if n2 else np.nan}
                    | {"difference": (k2 / n2 if n2 else np.nan) - (k1 / n1 if n1 else np.nan)}
                    | {"odds_ratio": test["odds_ratio"], "p_value": test["p_value"]}
                    | {"seeds": len(merged), "sign_per_seed": sign_agreement(per_seed)}
                    | {
                        "cnn_interpretable": bool(
                            merged[["cnn_interpretable_a", "cnn_interpretable_b"]].all().all()
                        )
                        if column == "predicted_AD"
                        else True
                    }
                )
    return pd.DataFrame(rows)


def likelihood_verdict_on_reals(scores: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """The KDE verdict (AD where log-lik under AD > under CN) as a classifier of held-out real
    slices (all of them: the verdict does not depend on the outlier rule)."""
    real = scores[scores["condition"] == REAL_CONDITION]
    labels = (real["group"] == "AD").to_numpy(int)
    margin = real["loglik_AD"].to_numpy(float) - real["loglik_CN"].to_numpy(float)
    # expit keeps the order (AUC) and maps the verdict's boundary (margin 0) to 0.5.
    metrics = bootstrap_binary_metrics(labels, expit(margin), n_boot=n_boot, seed=seed)
    return {k: v for k, v in metrics.items() if k != "brier"} | {
        "n_AD": int(labels.sum()),
        "n_CN": int(len(labels) - labels.sum()),
        "rule": "AD when log-likelihood under the AD KDE > under the CN KDE",
    }


def cnn_summary(cnn_metrics: list[dict], seeds: list[int]) -> dict:
    """The CNN's held-out figures per seed and their mean with a t interval across seeds."""
    keys = ("accuracy", "balanced_accuracy", "roc_auc", "brier")
    per_seed = [
        {"seed": s}
        | {k: m.get(k) for k in keys}
        | {k: m.get(k) for k in m if k.startswith("bootstrap_")}
        for s, m in zip(seeds, cnn_metrics, strict=True)
    ]
    across = {
        k: mean_interval(np.array([np.nan if m.get(k) is None else m[k] for m in cnn_metrics]))
        for k in keys
    }
    return {
        "per_seed": per_seed,
        "across_seeds": across,
        "split_balance": cnn_metrics[0].get("split_balance", {}),
    }


def summarise_replicates(
    *,
    scores: list[Path],
    set_metrics: list[Path],
    cnn_metrics: list[Path],
    seeds: list[int],
    conditions: list[str],
    n_bootstrap: int,
    out_by_seed: Path,
    out_summary: Path,
    out_comparisons: Path,
    out_verdict: Path,
) -> None:
    """Read each seed's flagged scores, set metrics and CNN metrics (lists in ``seeds`` order)."""
    if not (len(scores) == len(set_metrics) == len(cnn_metrics) == len(seeds)):
        raise ValueError("one scores, set-metrics and CNN-metrics file per seed expected")
    tables = []
    for seed, score_path, metrics_path in zip(seeds, scores, set_metrics, strict=True):
        table = io.read_tsv(score_path).astype({"condition": str, "group": str})
        metrics = io.read_tsv(metrics_path).astype({"condition": str, "group": str})
        tables.append(seed_rows(table, metrics, seed, conditions))
    by_seed = pd.concat(tables, ignore_index=True)
    first = io.read_tsv(scores[0]).astype({"condition": str, "group": str})
    verdict = {
        "kde_verdict_on_heldout_reals": likelihood_verdict_on_reals(first, n_bootstrap, seeds[0]),
        "cnn": cnn_summary([io.read_json(p) for p in cnn_metrics], seeds),
        "outlier_threshold": float(first["threshold"].iloc[0]),
        "seeds": seeds,
    }
    io.write_tsv(out_by_seed, by_seed)
    io.write_tsv(out_summary, summarise(by_seed))
    io.write_tsv(out_comparisons, compare_conditions(by_seed, conditions))
    io.write_json(out_verdict, verdict)
    log.info("summarised %d seeds x %d conditions", len(seeds), len(conditions))
