"""Table 1's numbers per replicate seed, their summary across seeds, and the tests between
conditions that a conclusion needs.

Per seed and set: mean log-likelihoods, CNN counts, likelihood misclassifications and morphometric
means of the images that are not outliers, the CNN's mean P(AD), and the out-of-distribution flag
of set_metrics (a set missing there is withheld: the guard fails closed). Sets are the generated
ones, the ceiling sets (held-out reals through a generator's bottleneck) and the held-out reals.

Across seeds, the images of one seed share one DreamBooth model, so the seed is the unit: a
generated set's headline is the mean of its per-seed figures with a Student-t 95% interval; counts
pooled over seeds (Wilson interval) are secondary, "images treated as independent". Real and
ceiling sets do not change with the seed, except through the seed's CNN: their KDE, outlier and
morphometric figures are counted once (intervals across their images, which are independent
subjects), their CNN figures across the seeds' CNNs. Between two conditions of one class: a paired
t-test on the per-seed fractions (see ``brainmr.evaluate.stats.tests.paired_seed_test``) with the
smallest difference the seeds can detect, beside Fisher's exact test on the pooled counts.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.conditions import OUTLIER_SET, REAL_CONDITION
from brainmr.evaluate.ceiling import is_ceiling
from brainmr.evaluate.judges.kde import misclassified_mask
from brainmr.evaluate.judges.morphometry import MEASURES
from brainmr.evaluate.judges.outliers import is_generated
from brainmr.evaluate.stats.binary import ad_labels, bootstrap_binary_metrics
from brainmr.evaluate.stats.intervals import (
    PROPORTION,
    accuracy_interval,
    mean_interval,
    wilson_interval,
)
from brainmr.evaluate.stats.tests import fisher_test, paired_seed_test, sign_agreement
from brainmr.evaluate.table1.differences import morphometry_differences
from brainmr.evaluate.table1.findings import findings
from brainmr.io import as_bool

log = logging.getLogger(__name__)

CNN_MEANS = ("mean_prob_AD",)
SEED_INVARIANT_MEANS = ("loglik_AD", "loglik_CN", "loglik_CN_minus_AD", *MEASURES)
MEANS = (*SEED_INVARIANT_MEANS[:3], *CNN_MEANS, *MEASURES)
COUNTS = ("predicted_AD", "misclassified")
CNN_COUNTS = ("predicted_AD",)
# The range of each mean, which its interval keeps (brainmr.evaluate.stats.intervals.mean_interval).
BOUNDS = {
    "mean_prob_AD": PROPORTION,
    "csf_fraction": PROPORTION,
    "brain_area_mm2": (0.0, np.inf),
    "ventricle_area_mm2": (0.0, np.inf),
}
FEW_PER_SEED = 2  # mean count per seed below which a seed-level interval is marked
NOT_MEASURED = "no set metrics for this set: the guard fails closed"


def kind_of(condition: str) -> str:
    """generated, ceiling, real or outlier: how a set's figures behave across seeds."""
    if condition == REAL_CONDITION:
        return "real"
    if condition == OUTLIER_SET:
        return "outlier"
    return "ceiling" if is_ceiling(condition) else "generated"


def misclassified(part: pd.DataFrame, group: str) -> np.ndarray:
    """Images whose likelihood verdict is the other class (kde.misclassified_mask: the one rule)."""
    loglik = {g: part[f"loglik_{g}"].to_numpy(float) for g in GROUPS}
    return misclassified_mask(np.broadcast_to(np.asarray(group, dtype=object), len(part)), loglik)


def set_row(part: pd.DataFrame, group: str | None) -> dict:
    """One set's numbers over the images of ``part`` (outliers already removed)."""
    n = len(part)

    def mean(column: str) -> float:
        return float(part[column].mean()) if n and column in part else np.nan

    row = {"n": n, "loglik_AD": mean("loglik_AD"), "loglik_CN": mean("loglik_CN")}
    row["loglik_CN_minus_AD"] = row["loglik_CN"] - row["loglik_AD"]
    row |= {measure: mean(measure) for measure in MEASURES}
    if group is None:
        return row
    return row | {
        "predicted_AD": int((part["predicted"] == "AD").sum()),
        "predicted_CN": int((part["predicted"] == "CN").sum()),
        "misclassified": int(misclassified(part, group).sum()),
        "mean_prob_AD": mean("prob_AD"),
    }


def set_order(scores: pd.DataFrame, conditions: list[str]) -> list[str]:
    """Generated conditions in config order, then ceiling sets, then the held-out reals."""
    ceilings = [c for c in dict.fromkeys(scores["condition"]) if is_ceiling(c)]
    return [*conditions, *ceilings, REAL_CONDITION]


def seed_rows(scores: pd.DataFrame, metrics: pd.DataFrame, seed: int, conditions: list[str]):
    """Table 1 of one seed: each (set, group), the outlier row."""
    interpretable = {
        (r.condition, r.group): (bool(r.cnn_interpretable), str(r.ood_reason))
        for r in metrics.fillna({"ood_reason": ""}).itertuples()
    }
    rows = []
    for condition in set_order(scores, conditions):
        for group in GROUPS:
            part = scores[(scores["condition"] == condition) & (scores["group"] == group)]
            if part.empty:
                raise ValueError(f"seed {seed}: no scores for {condition}/{group}")
            kept = part[~part["outlier"]]
            ok, why = interpretable.get((condition, group), (False, NOT_MEASURED))
            rows.append(
                {"seed": seed, "condition": condition, "group": group, "kind": kind_of(condition)}
                | set_row(kept, group)
                | {"n_total": len(part), "n_outliers": int(part["outlier"].sum())}
                | {"cnn_interpretable": ok, "ood_reason": why}
            )
    outliers = scores[scores["outlier"] & is_generated(scores["condition"])]
    rows.append(
        {"seed": seed, "condition": OUTLIER_SET, "group": "", "kind": "outlier"}
        | set_row(outliers, None)
        | {"n_total": len(outliers), "n_outliers": len(outliers)}
    )
    return pd.DataFrame(rows)


def outlier_counts(by_seed: pd.DataFrame, seed: int) -> dict:
    """What the outlier rule flags in one seed (rows of ``seed_rows``): the generated images
    (ceiling sets aside), and the held-out reals with their total."""
    part = by_seed[by_seed["seed"] == seed]
    real = part[part["condition"] == REAL_CONDITION]
    generated = part[part["kind"] == "generated"]
    return {
        "seed": seed,
        "generated": int(generated["n_outliers"].sum()),
        "real": int(real["n_outliers"].sum()),
        "real_total": int(real["n_total"].sum()),
    }


def _across_seeds(part: pd.DataFrame, row: dict, means, counts) -> dict:
    """Seed-level figures: each mean and count fraction across seeds (t interval), counts pooled
    (Wilson, images treated as independent) beside them."""
    for column in means:
        if column in part and part[column].notna().any():
            stats = mean_interval(part[column].to_numpy(float), bounds=BOUNDS.get(column))
            row |= {f"{column}_{k}": stats[k] for k in ("mean", "sd", "low", "high")}
    for column in counts:
        if column not in part or part[column].isna().all():
            continue
        fractions = part[column] / part["n"].replace(0, np.nan)
        stats = mean_interval(fractions.to_numpy(float), bounds=PROPORTION)
        row |= {f"{column}_seed_{k}": stats[k] for k in ("mean", "low", "high")}
        # a count this small per seed: the seed-level interval undercovers (calibration)
        few = row.get("kind") == "generated" and part[column].mean() < FEW_PER_SEED
        row[f"{column}_few_per_seed"] = bool(few)
        row[f"{column}_per_seed"] = ", ".join(
            f"{int(c)}/{int(n)}" for c, n in zip(part[column], part["n"], strict=True)
        )
    return row


def _pooled(part: pd.DataFrame, row: dict, counts) -> dict:
    for column in counts:
        if column not in part or part[column].isna().all():
            continue
        k, n = int(part[column].sum()), int(part["n"].sum())
        low, high = wilson_interval(k, n)
        row |= {column: k, f"{column}_pooled": k / n if n else np.nan}
        row |= {f"{column}_pooled_low": low, f"{column}_pooled_high": high}
    return row


def _seed_free(images: pd.DataFrame, group: str, row: dict) -> dict:
    """A reference set's figures that do not change with the seed (KDE, outlier rule,
    morphometry): means over the set's kept images with t intervals across them, the likelihood
    count with a Wilson interval (independent subjects), as the headline and as the pooled
    figure."""
    kept = images[~as_bool(images["outlier"], "outlier")]
    k, n = int(misclassified(kept, group).sum()), len(kept)
    kept = kept.assign(loglik_CN_minus_AD=kept["loglik_CN"] - kept["loglik_AD"])
    for column in SEED_INVARIANT_MEANS:
        if column not in kept:
            continue
        stats = mean_interval(kept[column].to_numpy(float), bounds=BOUNDS.get(column))
        row |= {f"{column}_{k}": stats[k] for k in ("mean", "sd", "low", "high")}
    low, high = wilson_interval(k, n)
    row |= {"misclassified": k, "misclassified_pooled": k / n if n else np.nan}
    row |= {"misclassified_pooled_low": low, "misclassified_pooled_high": high}
    row |= {"misclassified_seed_mean": k / n if n else np.nan}
    row |= {"misclassified_seed_low": low, "misclassified_seed_high": high}
    row["misclassified_per_seed"] = f"{k}/{n} (every seed)"
    return row


def summarise(by_seed: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """One row per set across seeds (see the module's docstring for the unit of each figure).
    ``references``: the flagged seed-free scores of the held-out reals and the ceiling sets
    (``outliers.flag_references``), for their per-image figures."""
    rows = []
    for (condition, group), part in by_seed.groupby(["condition", "group"], sort=False):
        kind = kind_of(condition)
        row = {"condition": condition, "group": group, "kind": kind, "n_seeds": len(part)}
        if kind in ("real", "ceiling"):
            row |= {"n": int(part["n"].iloc[0]), "n_outliers": int(part["n_outliers"].iloc[0])}
            row["unit"] = "images (KDE, outliers, morphometry); seeds' CNNs (CNN)"
            row = _across_seeds(part, row, CNN_MEANS, CNN_COUNTS)
            images = references[
                (references["condition"] == condition) & (references["group"] == group)
            ]
            row = _seed_free(images, group, row)
        else:
            row |= {"n": int(part["n"].sum()), "n_outliers": int(part["n_outliers"].sum())}
            row["unit"] = "seeds" if kind == "generated" else "seeds (outlier images)"
            row = _across_seeds(part, row, MEANS, COUNTS if kind == "generated" else ())
            row = _pooled(part, row, COUNTS if kind == "generated" else ())
        if "cnn_interpretable" in part and part["cnn_interpretable"].notna().any():
            flags = as_bool(part["cnn_interpretable"], "cnn_interpretable")
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
    """Between two conditions of one class (B against A): the mean per-seed difference in the
    fraction predicted AD and misclassified, with a paired t-test across seeds and the smallest
    difference the seeds can detect; Fisher's exact test on the pooled counts as secondary."""
    rows = []
    for group in GROUPS:
        for first, second in itertools.combinations(conditions, 2):
            a = by_seed[(by_seed["condition"] == first) & (by_seed["group"] == group)]
            b = by_seed[(by_seed["condition"] == second) & (by_seed["group"] == group)]
            merged = a.merge(b, on="seed", suffixes=("_a", "_b"))
            for column in COUNTS:
                fa = merged[f"{column}_a"] / merged["n_a"].replace(0, np.nan)
                fb = merged[f"{column}_b"] / merged["n_b"].replace(0, np.nan)
                test = paired_seed_test(fa.to_numpy(float), fb.to_numpy(float))
                k1, n1 = int(a[column].sum()), int(a["n"].sum())
                k2, n2 = int(b[column].sum()), int(b["n"].sum())
                pooled = fisher_test(k2, n2, k1, n1)  # odds of B over A: the sign of B - A
                p1, p2 = (k1 / n1 if n1 else np.nan), (k2 / n2 if n2 else np.nan)
                rows.append(
                    {"group": group, "measure": column, "condition_a": first}
                    | {"condition_b": second, "seeds": len(merged)}
                    | {"fraction_a": float(fa.mean()), "fraction_b": float(fb.mean())}
                    | {"difference": test["difference"], "low": test["low"]}
                    | {"high": test["high"], "p_value": test["p_value"]}
                    | {"detectable": test["detectable"], "sign_per_seed": sign_agreement(fb - fa)}
                    | {"note": test["note"]}
                    | {"k_a": k1, "n_a": n1, "k_b": k2, "n_b": n2}
                    | {"pooled_difference": p2 - p1, "pooled_odds_ratio": pooled["odds_ratio"]}
                    | {"pooled_p_value": pooled["p_value"]}
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
    """The KDE verdict as a classifier of held-out real slices (all of them: the verdict does
    not depend on the outlier rule). Accuracy from the verdict itself (the tie rule of Table 1)
    with a Wilson interval; ROC AUC on the raw log-likelihood margin, so that large margins stay
    ordered (a probability transform saturates them into ties)."""
    real = scores[scores["condition"] == REAL_CONDITION]
    groups = real["group"].astype(str).to_numpy()
    labels = ad_labels(groups)
    margin = real["loglik_AD"].to_numpy(float) - real["loglik_CN"].to_numpy(float)
    correct = int(np.sum(~misclassified(real, groups)))
    low, high = accuracy_interval(correct, len(real))
    auc = bootstrap_binary_metrics(labels, margin, n_boot=n_boot, seed=seed, threshold=0.0)
    return {
        "accuracy": correct / len(real) if len(real) else np.nan,
        "accuracy_low": low,
        "accuracy_high": high,
        "auc": auc["auc"],
        "auc_low": auc["auc_low"],
        "auc_high": auc["auc_high"],
        "n_AD": int(labels.sum()),
        "n_CN": int(len(labels) - labels.sum()),
        "rule": "AD when log-likelihood under the AD KDE > under the CN KDE (a tie is CN)",
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
        k: mean_interval(
            np.array([np.nan if m.get(k) is None else m[k] for m in cnn_metrics]),
            bounds=PROPORTION,
        )
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
    references: Path,
    set_metrics: list[Path],
    cnn_metrics: list[Path],
    seeds: list[int],
    conditions: list[str],
    n_bootstrap: int,
    out_by_seed: Path,
    out_summary: Path,
    out_comparisons: Path,
    out_verdict: Path,
    reals: Path,
    out_morphometry: Path,
    out_findings: Path,
) -> None:
    """Read each seed's flagged scores, set metrics and CNN metrics (lists in ``seeds`` order),
    the flagged seed-free scores of the reference sets and the real slices' morphometry; write
    the by-seed table, the summary, the comparisons, the judges' figures on held-out reals, the
    morphometric differences and the findings."""
    if not (len(scores) == len(set_metrics) == len(cnn_metrics) == len(seeds)):
        raise ValueError("one scores, set-metrics and CNN-metrics file per seed expected")
    per_seed = [io.read_tsv(p) for p in scores]
    by_seed = pd.concat(
        [
            seed_rows(table, io.read_tsv(metrics_path), seed, conditions)
            for seed, table, metrics_path in zip(seeds, per_seed, set_metrics, strict=True)
        ],
        ignore_index=True,
    )
    refs = io.read_tsv(references)
    verdict = {
        "kde_verdict_on_heldout_reals": likelihood_verdict_on_reals(refs, n_bootstrap, seeds[0]),
        "cnn": cnn_summary([io.read_json(p) for p in cnn_metrics], seeds),
        "outlier_threshold": float(refs["threshold"].iloc[0]),
        "outliers_per_seed": [outlier_counts(by_seed, s) for s in seeds],
        "seeds": seeds,
    }
    summary = summarise(by_seed, refs)
    kept = ~as_bool(refs["outlier"], "outlier")
    held = refs["condition"] == REAL_CONDITION
    morphometry = morphometry_differences(
        by_seed,
        io.read_tsv(reals),
        conditions,
        ceilings=refs[refs["condition"].map(is_ceiling) & kept],
        held_out_outliers=refs.loc[held & ~kept, "subject"],
        seed=seeds[0],
    )
    io.write_tsv(out_by_seed, by_seed)
    io.write_tsv(out_summary, summary)
    io.write_tsv(out_comparisons, compare_conditions(by_seed, conditions))
    io.write_json(out_verdict, verdict)
    io.write_tsv(out_morphometry, morphometry)
    io.write_json(
        out_findings,
        findings(
            summary=summary,
            by_seed=by_seed,
            morphometry=morphometry,
            references=refs,
            scores=per_seed,
            conditions=conditions,
            n_boot=n_bootstrap,
            seed=seeds[0],
        ),
    )
    log.info("summarised %d seeds x %d conditions", len(seeds), len(conditions))
