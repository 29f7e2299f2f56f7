"""Table 1 of the paper (one seed), with this tool's extra columns and the notes below it (how
its numbers were obtained; the judges' lines, which the summary across seeds repeats).

Rows in labels.ordered's order; means and counts exclude outliers: the outlier row holds all
generated outliers, and the held-out real AD and CN go through the same KDE, CNN and outlier rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from brainmr.evaluate.judges.outliers import RULE
from brainmr.evaluate.studies.kde_sensitivity import misclassified_range
from brainmr.evaluate.table1.replicates import OUTLIER_SET
from brainmr.io import as_bool
from brainmr.report.format import DASH, NOT_INTERPRETABLE, fmt, interval
from brainmr.report.labels import ordered, set_label

COLUMNS = [
    "generated set",
    "AD log-lik",
    "CN log-lik",
    "predicted AD",
    "predicted CN",
    "misclassified (likelihood)",
]
N_COLUMN = "n"  # images behind the row's numbers (after outlier exclusion); not in the paper
VENTRICLES = "ventricle area (mm²)"
EXTRA_COLUMNS = [
    N_COLUMN,
    "outliers",
    "mean P(AD)",
    "P(AD) 95% CI",
    "CNN counts interpretable",
    VENTRICLES,
]


def table1_frame(by_seed: pd.DataFrame, seed: int, conditions: Mapping) -> pd.DataFrame:
    """The paper's Table 1 for one seed, with this tool's extra columns."""
    part = ordered(by_seed[by_seed["seed"] == seed], conditions)
    rows = []
    for r in part.to_dict(orient="records"):
        counted = r["condition"] != OUTLIER_SET
        rows.append(
            {
                "generated set": set_label(r["condition"], r["group"], conditions),
                "AD log-lik": r["loglik_AD"],
                "CN log-lik": r["loglik_CN"],
                "predicted AD": int(r["predicted_AD"]) if counted else DASH,
                "predicted CN": int(r["predicted_CN"]) if counted else DASH,
                "misclassified (likelihood)": int(r["misclassified"]) if counted else DASH,
                N_COLUMN: int(r["n"]),
                "outliers": int(r["n_outliers"]) if counted else DASH,
                "mean P(AD)": r["mean_prob_AD"] if counted else DASH,
                "P(AD) 95% CI": DASH,
                "CNN counts interpretable": (
                    ("yes" if r["cnn_interpretable"] else "no") if counted else DASH
                ),
                VENTRICLES: r.get("ventricle_area_mm2", np.nan),
            }
        )
    return pd.DataFrame(rows, columns=[*COLUMNS, *EXTRA_COLUMNS])


def cn_minus_ad(by_seed: pd.DataFrame, seed: int, conditions: Mapping) -> dict[str, float]:
    """Evaluate's CN − AD log-likelihood of each Table 1 row of one seed, by row label."""
    part = by_seed[by_seed["seed"] == seed]
    return {
        set_label(r.condition, r.group, conditions): r.loglik_CN_minus_AD for r in part.itertuples()
    }


def with_prob_intervals(table: pd.DataFrame, metrics: pd.DataFrame, conditions) -> pd.DataFrame:
    """Fill the P(AD) interval column from the seed's set metrics."""
    table = table.copy()
    for r in metrics.itertuples():
        label = set_label(r.condition, r.group, conditions)
        table.loc[table["generated set"] == label, "P(AD) 95% CI"] = interval(
            r.prob_AD_low, r.prob_AD_high, 3
        )
    return table


def marked(table: pd.DataFrame) -> pd.DataFrame:
    """Markdown view: CNN counts of out-of-distribution sets carry the not-interpretable mark."""
    view = table.copy().astype(object)
    bad = view["CNN counts interpretable"] == "no"
    for column in ("predicted AD", "predicted CN"):
        view.loc[bad, column] = [f"{v} {NOT_INTERPRETABLE}" for v in view.loc[bad, column]]
    return view


def cnn_line(cnn: dict) -> str:
    def ci(key: str) -> str:
        return interval(cnn.get(f"bootstrap_{key}_low"), cnn.get(f"bootstrap_{key}_high"), 3)

    return (
        f"accuracy {fmt(cnn.get('accuracy'), 3)} (Wilson 95% CI {ci('accuracy')}), balanced "
        f"accuracy {fmt(cnn.get('balanced_accuracy'), 3)}, ROC AUC {fmt(cnn.get('roc_auc'), 3)} "
        f"(CI {ci('auc')}), Brier score {fmt(cnn.get('brier'), 3)}"
    )


def verdict_line(verdict: dict) -> str:
    kde = verdict["kde_verdict_on_heldout_reals"]
    return (
        f"the likelihood verdict ({kde['rule']}) as a classifier of held-out real slices "
        f"(n = {kde['n_AD']} AD + {kde['n_CN']} CN): accuracy {fmt(kde['accuracy'], 3)} "
        f"(Wilson 95% CI {interval(kde['accuracy_low'], kde['accuracy_high'], 3)}), ROC AUC on "
        f"the log-likelihood margin {fmt(kde['auc'], 3)} (bootstrap 95% CI "
        f"{interval(kde['auc_low'], kde['auc_high'], 3)}). The "
        "'misclassified (likelihood)' column means little unless this is well above chance."
    )


def kde_line(kde: dict) -> str:
    bandwidths = ", ".join(f"{g} {h:.4g}" for g, h in kde["bandwidths"].items())
    n_per_class = ", ".join(f"{g} {n}" for g, n in kde["n_per_class"].items())
    return (
        f"KDE space: {kde['space']}; {kde['components']} components "
        f"({kde['explained_variance_total']:.1%} of variance). Gaussian KDE per class on its "
        f"training slices (n = {n_per_class}); bandwidth rule {kde.get('bandwidth_rule')}, "
        f"balance {kde.get('balance')}; bandwidths {bandwidths}"
        + (" (AT A SEARCH BOUND: widen bandwidth_bounds)" if kde.get("at_bound") else "")
        + "."
    )


def sensitivity_line(sensitivity: pd.DataFrame) -> str:
    """The range of the misclassified fraction over the KDE variants, per generated set
    (brainmr.evaluate.studies.kde_sensitivity.misclassified_range)."""
    ranges = misclassified_range(sensitivity)
    parts = [f"{r.condition}/{r.group} {r.low:.2f}–{r.high:.2f}" for r in ranges.sets.itertuples()]
    return (
        "misclassified fraction (pooled over seeds) across PCA components x bandwidth rule x "
        f"balance ({ranges.n_variants} variants, results/evaluate/kde_sensitivity.csv): "
        + "; ".join(parts)
        + "."
    )


def table1_notes(
    *,
    kde: dict,
    cnn: dict,
    verdict: dict,
    metrics: pd.DataFrame,
    seed: int,
    mad_k: float,
    sensitivity: pd.DataFrame,
    conditions: Mapping,
) -> list[str]:
    """The notes below Table 1 of ``seed``; the outlier counts are the verdict's
    (brainmr.evaluate.table1.replicates.outlier_counts)."""
    (outliers,) = [c for c in verdict["outliers_per_seed"] if c["seed"] == seed]
    lines = [
        "## How these numbers were obtained",
        "",
        f"- Replicate seed {seed} of {verdict['seeds']} (DreamBooth, generation and CNN); every "
        "cell across seeds, with intervals and tests between conditions: table1_summary.md.",
        f"- {kde_line(kde)}",
        f"- Outlier rule: {RULE}, k = {mad_k:g}; threshold = {verdict['outlier_threshold']:.2f}. "
        f"It flags {outliers['generated']} generated image(s) and "
        f"{outliers['real']} of {outliers['real_total']} held-out real slices; "
        "flagged images are excluded from every row above, real rows included.",
        f"- CNN (held-out test, n = {cnn.get('n_test_AD', '?')} AD + "
        f"{cnn.get('n_test_CN', '?')} CN): {cnn_line(cnn)}.",
        f"- KDE: {verdict_line(verdict)}",
        f"- Sensitivity of the likelihood verdict: {sensitivity_line(sensitivity)}",
        "- 'misclassified (likelihood)': an image generated as one class whose likelihood under "
        "the other class's KDE is higher; 'predicted AD/CN': CNN P(AD) >= 0.5 or not; "
        "'mean P(AD)' with a t interval over the set's images.",
    ]
    bad = metrics[~as_bool(metrics["cnn_interpretable"], "cnn_interpretable")]
    if len(bad):
        lines.append(
            f"- {NOT_INTERPRETABLE} CNN counts NOT INTERPRETABLE for "
            + "; ".join(
                f"{set_label(r.condition, r.group, conditions)} ({r.ood_reason})"
                for r in bad.itertuples()
            )
            + ". These images do not look like real brains of either class to the CNN (its "
            "feature space: precision/coverage against the reals it did not train on, both "
            "classes pooled, compared with what those reals get against one another at the same "
            "size), so its predictions on them carry no information."
        )
    for warning in cnn.get("split_balance", {}).get("warnings", []):
        lines.append(f"- WARNING, train/test split: {warning}")
    return lines
