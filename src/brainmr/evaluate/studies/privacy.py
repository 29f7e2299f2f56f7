"""Can the generated images be shared? Three measures, each with the uncertainty to read it.

1. A loss-based membership-inference attack per DreamBooth model: a slice is called a member
   when its denoising loss is low (brainmr.diffusion.membership). Its ROC AUC over members (the
   model's train slices) and non-members (held-out slices of the same classes), with a bootstrap
   interval over subjects, and its true-positive rate at 1% and 10% false positives, the regime
   an attacker cares about. A rate at false-positive rate f needs at least 1/f non-members; with
   fewer it is not estimable and stays NaN. The base model, which saw none of the slices, gives
   the floor. Across seeds: the mean with a Student-t interval.
2. Copies per training subject: generated images whose nearest training slice (correlation inside
   the brain) is above the memorization threshold, a quantile of the held-out reals' own
   nearest-neighbour correlations. The threshold is itself an estimate: its bootstrap interval
   over held-out reals is given, and the count at both ends; with fewer held-out reals than
   1 / (1 - quantile) the quantile is the largest of them, in effect.
3. Memorization against training steps, from the validation grids drawn at fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from brainmr.evaluate.judges.metrics import memorization_threshold
from brainmr.evaluate.stats.binary import bootstrap_binary_metrics
from brainmr.evaluate.stats.intervals import PROPORTION, mean_interval
from brainmr.io import as_bool

FPRS = (0.01, 0.10)  # the false-positive rates the attack's true-positive rate is read at
NAN = math.nan


def fpr_name(fpr: float) -> str:
    return f"tpr_at_{round(fpr * 100)}pct_fpr"


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> float:
    """The attack's true-positive rate at false-positive rate ``fpr`` (the largest on the ROC
    curve with FPR <= fpr); NaN with fewer than 1/fpr non-members, which cannot resolve it."""
    member_scores = np.asarray(member_scores, float)
    nonmember_scores = np.asarray(nonmember_scores, float)
    if len(nonmember_scores) < math.ceil(1 / fpr - 1e-9) or not len(member_scores):
        return NAN
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    fprs, tprs, _ = roc_curve(labels, np.r_[member_scores, nonmember_scores])
    return float(tprs[fprs <= fpr + 1e-12].max())


def attack_figures(loss: np.ndarray, member: np.ndarray, n_boot: int, seed: int) -> dict:
    """The attack on one model: a lower loss says member. AUC with its percentile bootstrap
    interval (resampling subjects within members and non-members), TPR at FPRS, the counts."""
    loss, member = np.asarray(loss, float), np.asarray(member, bool)
    score = -loss
    figures = bootstrap_binary_metrics(
        member.astype(int), score, n_boot=n_boot, seed=seed, threshold=0.0
    )
    out = {k: figures[k] for k in ("auc", "auc_low", "auc_high")}
    for fpr in FPRS:
        out[fpr_name(fpr)] = tpr_at_fpr(score[member], score[~member], fpr)
    return out | {"n_members": int(member.sum()), "n_nonmembers": int((~member).sum())}


def attack_table(losses: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """One row per (condition, stage, model) of the membership tables (columns condition, stage
    ("seed<s>" or "base"), model, member, loss): the attack's figures."""
    rows = []
    for (condition, stage, model), part in losses.groupby(
        ["condition", "stage", "model"], sort=False
    ):
        member = as_bool(part["member"], "member")
        figures = attack_figures(part["loss"].to_numpy(float), member.to_numpy(), n_boot, seed)
        rows.append({"condition": condition, "stage": stage, "model": model} | figures)
    return pd.DataFrame(rows)


def attack_summary(attacks: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, model): the attack AUC and TPRs as the mean across seeds with a t
    interval (the seed is the unit), beside the base model's AUC and its bootstrap interval."""
    rows = []
    for (condition, model), part in attacks.groupby(["condition", "model"], sort=False):
        seeds = part[part["stage"] != "base"]
        base = part[part["stage"] == "base"]
        row = {"condition": condition, "model": model, "n_seeds": len(seeds)}
        for column in ("auc", *map(fpr_name, FPRS)):
            stats = mean_interval(seeds[column].to_numpy(float), bounds=PROPORTION)
            row |= {f"{column}_{k}": stats[k] for k in ("mean", "low", "high")}
        row["auc_per_seed"] = ", ".join(f"{a:.2f}" for a in seeds["auc"])
        for k in ("auc", "auc_low", "auc_high"):
            row[f"base_{k}"] = float(base[k].iloc[0]) if len(base) else NAN
        row |= {"n_members": int(seeds["n_members"].max()) if len(seeds) else 0}
        row |= {"n_nonmembers": int(seeds["n_nonmembers"].max()) if len(seeds) else 0}
        rows.append(row)
    return pd.DataFrame(rows)


def threshold_interval(
    real_nn_corr: np.ndarray, quantile: float, n_boot: int, seed: int
) -> dict[str, float]:
    """The memorization threshold (the quantile of the held-out reals' nearest-neighbour
    correlations) with its percentile bootstrap interval over those reals, their number, and
    how many reals a quantile needs before it is more than their maximum."""
    values = np.asarray(real_nn_corr, float)
    threshold = memorization_threshold(values, quantile)
    rng = np.random.default_rng(seed)
    draws = rng.choice(values, size=(n_boot, len(values)))
    boots = np.quantile(draws, quantile, axis=1)
    low, high = np.quantile(boots, [0.025, 0.975])
    return {
        "threshold": threshold,
        "threshold_low": float(low),
        "threshold_high": float(high),
        "n_reals": len(values),
        "reals_needed": math.ceil(1 / (1 - quantile)),
    }


def copies_per_subject(
    generated: pd.DataFrame, train: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    """Per training subject (``train``: subject, group, path): how many generated images
    (``generated``: nn_path, nn_corr) have its slice as their nearest neighbour above
    ``threshold``, and the highest such correlation of any image (copy or not)."""
    nearest = generated.groupby("nn_path")["nn_corr"]
    above = generated[generated["nn_corr"] > threshold].groupby("nn_path").size()
    paths = train["path"].astype(str)
    return train[["subject", "group"]].assign(
        copies=paths.map(above).fillna(0).astype(int).to_numpy(),
        max_corr=paths.map(nearest.max()).to_numpy(float),
    )


def copies_summary(per_seed: pd.DataFrame) -> dict[str, float]:
    """Across seeds (``per_seed``: seed, subject, copies): the share of training subjects copied
    at least once, mean with a t interval (the seed is the unit), and the copies per seed."""
    shares = per_seed.groupby("seed")["copies"].apply(lambda c: float((c > 0).mean()))
    stats = mean_interval(shares.to_numpy(float), bounds=PROPORTION)
    totals = per_seed.groupby("seed")["copies"].sum()
    return {
        "share_copied_mean": stats["mean"],
        "share_copied_low": stats["low"],
        "share_copied_high": stats["high"],
        "share_copied_per_seed": ", ".join(f"{s:.2f}" for s in shares),
        "copies_per_seed": ", ".join(str(int(t)) for t in totals),
    }


def most_copied(per_seed: pd.DataFrame, top: int) -> pd.DataFrame:
    """The subjects with the most copies summed over seeds (ties: the higher correlation),
    with their copies per seed and highest correlation; subjects never copied left out."""
    table = per_seed.groupby(["subject", "group"], sort=False).agg(
        copies=("copies", "sum"), max_corr=("max_corr", "max")
    )
    seeds = per_seed.pivot_table(index="subject", columns="seed", values="copies", aggfunc="sum")
    table = table.reset_index()
    table["copies_per_seed"] = [
        ", ".join(str(int(v)) for v in seeds.loc[s]) for s in table["subject"]
    ]
    table = table[table["copies"] > 0].sort_values(["copies", "max_corr"], ascending=False)
    return table.head(top).reset_index(drop=True)


def step_curve(steps: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per (condition, step), over the seeds' validation images (``steps``: condition, seed,
    step, nn_corr): the median and largest nearest-neighbour correlation and the copies (above
    ``threshold``) as the mean per seed with a t interval."""
    rows = []
    for (condition, step), part in steps.groupby(["condition", "step"], sort=True):
        per_seed = part.groupby("seed")["nn_corr"].apply(lambda c: float((c > threshold).mean()))
        stats = mean_interval(per_seed.to_numpy(float), bounds=PROPORTION)
        rows.append(
            {
                "condition": condition,
                "step": int(step),
                "n_images": len(part),
                "nn_corr_median": float(part["nn_corr"].median()),
                "nn_corr_max": float(part["nn_corr"].max()),
                "copies": int((part["nn_corr"] > threshold).sum()),
                "copy_share_mean": stats["mean"],
                "copy_share_low": stats["low"],
                "copy_share_high": stats["high"],
            }
        )
    return pd.DataFrame(rows)
