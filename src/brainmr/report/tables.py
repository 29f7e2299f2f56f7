"""Table 1 of the paper (seed 0), its summary across replicate seeds, its comparison with the
paper and the extra metrics, formatted from what brainmr.evaluate computed. Nothing is computed
here but formatting: every number comes from the evaluation's tables.

Table 1 rows: one per (condition, class), labelled group + conditions[c]["label"], in config
order, AD before CN; means and counts exclude outliers. Then the outlier row (all generated
outliers), then held-out real AD and CN through the same KDE, CNN and outlier rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from brainmr import GROUPS, io
from brainmr.evaluate.ceiling import CEILING_PREFIX, is_ceiling
from brainmr.evaluate.outliers import REAL_CONDITION, RULE
from brainmr.evaluate.replicates import OUTLIER_SET
from brainmr.report.html import markdown_html

log = logging.getLogger(__name__)

DASH = "—"
NOT_INTERPRETABLE = "†"
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
OUTLIER_LABEL = "outlier"
REAL_LABEL = "held-out real {group}"
CEILING_LABEL = "held-out real {group} through the generator ({bottleneck})"

# PAPER.md, Table 1 (labels without the quotes around "brain").
PAPER_TABLE1 = pd.DataFrame(
    [
        ["AD", -423.95, -412.64, 3, 97, 98, 100],
        ["CN", -423.82, -412.03, 2, 98, 0, 100],
        ["AD (no brain)", -426.56, -418.90, 7, 92, 97, 99],
        ["CN (no brain)", -426.08, -415.96, 5, 95, 3, 100],
        [OUTLIER_LABEL, -507.05, -502.40, None, None, None, 1],
    ],
    columns=[*COLUMNS, N_COLUMN],
    dtype=object,  # keeps the counts integers beside the missing outlier counts
)


def normalise_label(label: str) -> str:
    return " ".join(label.replace('"', "").replace("'", "").split())


def row_label(group: str, condition: str, conditions: Mapping) -> str:
    """group + the condition's label; a condition without one is told apart by its name."""
    suffix = conditions[condition].get("label")
    return f"{group}{suffix if suffix is not None else f' ({condition})'}"


def set_label(condition: str, group: str, conditions: Mapping) -> str:
    """The row label of any set of the evaluation's tables (generated, outlier, held-out real)."""
    if condition == OUTLIER_SET:
        return OUTLIER_LABEL
    if condition == REAL_CONDITION:
        return REAL_LABEL.format(group=group)
    if is_ceiling(condition):
        return CEILING_LABEL.format(group=group, bottleneck=condition[len(CEILING_PREFIX) :])
    return row_label(group, condition, conditions)


def interval(low, high, digits: int = 2) -> str:
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return DASH
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def ordered(table: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    """Rows in Table 1's order: conditions in config order (AD, CN), outlier, ceiling sets,
    held-out reals."""
    order = [(c, g) for c in conditions for g in GROUPS] + [(OUTLIER_SET, "")]
    ceilings = [c for c in dict.fromkeys(table["condition"]) if is_ceiling(c)]
    order += [(c, g) for c in ceilings for g in GROUPS]
    order += [(REAL_CONDITION, g) for g in GROUPS]
    rank = {key: i for i, key in enumerate(order)}
    keys = [
        rank.get((c, g if isinstance(g, str) else ""), len(rank))
        for c, g in zip(table["condition"], table["group"], strict=True)
    ]
    return table.assign(_rank=keys).sort_values("_rank", kind="stable").drop(columns="_rank")


def fmt(value, digits: int = 2) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame, digits: int = 2) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def header(title: str, run_label: str, synthetic: bool) -> list[str]:
    lines = [f"# {title}", "", f"Run: {run_label}", ""]
    if synthetic:
        lines += [
            "**SYNTHETIC DEMO DATA: a synthetic cohort and a tiny locally trained model, not ADNI "
            "and not Stable Diffusion. These numbers say nothing about the paper's claims.**",
            "",
        ]
    return lines


def vs_paper_markdown(
    ours: pd.DataFrame,
    run_label: str,
    synthetic: bool,
    kde: dict,
    cnn: dict,
    provenance: Mapping[str, object],
) -> str:
    by_label = {normalise_label(r["generated set"]): r for _, r in ours.iterrows()}
    pairs = [
        ("AD log-lik", "AD log-lik"),
        ("CN log-lik", "CN log-lik"),
        ("CN − AD log-lik", None),
        ("predicted AD", "predicted AD"),
        ("predicted CN", "predicted CN"),
        ("misclassified (likelihood)", "misclassified (likelihood)"),
        (N_COLUMN, N_COLUMN),
    ]
    rows = []
    for _, paper in PAPER_TABLE1.iterrows():
        label = paper["generated set"]
        mine = by_label.get(normalise_label(label))
        cells = [label]
        for _name, column in pairs:
            if column is None:
                theirs = paper["CN log-lik"] - paper["AD log-lik"]
                our = math.nan if mine is None else _diff(mine)
            else:
                theirs = paper[column]
                our = math.nan if mine is None else mine[column]
            cells.append(f"{fmt(theirs)} / {fmt(our)}")
        rows.append(cells)
    table = pd.DataFrame(rows, columns=["row", *[f"{n} (paper / ours)" for n, _ in pairs]])
    extra = [
        lbl
        for lbl in ours["generated set"]
        if normalise_label(lbl) not in {normalise_label(x) for x in PAPER_TABLE1["generated set"]}
    ]
    origin = "synthetic demo cohort and demo model" if synthetic else "real data (see run label)"
    lines = header("Table 1: the paper beside this run", run_label, synthetic)
    lines += [markdown_table(table), "", "## How ours were obtained", ""]
    lines += [f"- Data: {origin}."]
    lines += [f"- {key}: {value}" for key, value in provenance.items()]
    lines += [
        f"- This table: replicate seed {cnn.get('seed')}; KDE: {kde['components']} PCA components,"
        " bandwidths "
        + ", ".join(f"{g} {h:.4g}" for g, h in kde["bandwidths"].items())
        + f"; CNN held-out balanced accuracy {fmt(cnn.get('balanced_accuracy'), 3)}, "
        f"AUC {fmt(cnn.get('roc_auc'), 3)}. Across seeds: table1_summary.md.",
        "",
        "## Reading it",
        "",
        "- Absolute log-likelihoods depend on the KDE space (dimension, normalisation, bandwidth),"
        " which the paper does not give: compare the sign and size of CN − AD and the counts, "
        "not the raw values.",
        "- Counts are out of n (the paper's n: 100 per set, minus its one outlier).",
        f"- Rows of this run the paper lacks (see table1.md): {', '.join(extra) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def _diff(row) -> float:
    try:
        return float(row["CN log-lik"]) - float(row["AD log-lik"])
    except (TypeError, ValueError):
        return math.nan


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
    """The range of the misclassified fraction over the KDE variants, per generated set."""
    parts = []
    for (condition, group), part in sensitivity.groupby(["condition", "group"], sort=False):
        by_variant = part.groupby(["pca_components", "bandwidth_rule", "balance"])
        pooled = by_variant["misclassified"].sum() / by_variant["n"].sum()
        parts.append(f"{condition}/{group} {pooled.min():.2f}–{pooled.max():.2f}")
    return (
        "misclassified fraction (pooled over seeds) across PCA components x bandwidth rule x "
        f"balance ({sensitivity.groupby(['pca_components', 'bandwidth_rule', 'balance']).ngroups}"
        " variants, results/evaluate/kde_sensitivity.csv): " + "; ".join(parts) + "."
    )


def table1_notes(
    *,
    kde: dict,
    cnn: dict,
    verdict: dict,
    metrics: pd.DataFrame,
    by_seed: pd.DataFrame,
    seed: int,
    mad_k: float,
    sensitivity: pd.DataFrame,
    conditions: Mapping,
) -> list[str]:
    part = by_seed[by_seed["seed"] == seed]
    real = part[part["condition"] == REAL_CONDITION]
    generated = part[part["kind"] == "generated"]
    lines = [
        "## How these numbers were obtained",
        "",
        f"- Replicate seed {seed} of {verdict['seeds']} (DreamBooth, generation and CNN); every "
        "cell across seeds, with intervals and tests between conditions: table1_summary.md.",
        f"- {kde_line(kde)}",
        f"- Outlier rule: {RULE}, k = {mad_k:g}; threshold = {verdict['outlier_threshold']:.2f}. "
        f"It flags {int(generated['n_outliers'].sum())} generated image(s) and "
        f"{int(real['n_outliers'].sum())} of {int(real['n_total'].sum())} held-out real slices; "
        "flagged images are excluded from every row above, real rows included.",
        f"- CNN (held-out test, n = {cnn.get('n_test_AD', '?')} AD + "
        f"{cnn.get('n_test_CN', '?')} CN): {cnn_line(cnn)}.",
        f"- KDE: {verdict_line(verdict)}",
        f"- Sensitivity of the likelihood verdict: {sensitivity_line(sensitivity)}",
        "- 'misclassified (likelihood)': an image generated as one class whose likelihood under "
        "the other class's KDE is higher; 'predicted AD/CN': CNN P(AD) >= 0.5 or not; "
        "'mean P(AD)' with a t interval over the set's images.",
    ]
    bad = metrics[~metrics["cnn_interpretable"].astype(bool)]
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


SUMMARY_COLUMNS = {
    "loglik_AD": "AD log-lik",
    "loglik_CN": "CN log-lik",
    "loglik_CN_minus_AD": "CN − AD log-lik",
    "mean_prob_AD": "mean P(AD)",
    "ventricle_area_mm2": VENTRICLES,
}


def summary_frame(summary: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    """Machine-readable summary: every cell's mean, sd and interval, counts pooled."""
    table = ordered(summary.fillna({"group": ""}), conditions)
    labels = [
        set_label(c, g, conditions) for c, g in zip(table["condition"], table["group"], strict=True)
    ]
    return table.assign(**{"set": labels}).set_index("set").reset_index()


def summary_markdown_rows(summary: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    rows = []
    for r in ordered(summary.fillna({"group": ""}), conditions).to_dict(orient="records"):
        row = {"set": set_label(r["condition"], r["group"], conditions), "seeds": r["n_seeds"]}
        row["n"] = r["n"]
        for key, name in SUMMARY_COLUMNS.items():
            if f"{key}_mean" in r and pd.notna(r[f"{key}_mean"]):
                digits = 3 if key == "mean_prob_AD" else 2
                row[name] = (
                    f"{r[key + '_mean']:.{digits}f} ± {fmt(r[key + '_sd'], digits)} "
                    f"{interval(r[key + '_low'], r[key + '_high'], digits)}"
                )
            else:
                row[name] = DASH
        for key, name in (("predicted_AD", "predicted AD"), ("misclassified", "misclassified")):
            mark = ""
            if key == "predicted_AD" and r.get("cnn_interpretable") is False:
                mark = f" {NOT_INTERPRETABLE}"
            if pd.notna(r.get(f"{key}_seed_mean", np.nan)):
                row[name] = (
                    f"{r[key + '_seed_mean']:.3f} "
                    f"{interval(r[key + '_seed_low'], r[key + '_seed_high'], 3)}{mark}"
                )
                row[f"{name} per seed"] = r[f"{key}_per_seed"]
            else:
                row[name] = row[f"{name} per seed"] = DASH
            if pd.notna(r.get(f"{key}_pooled", np.nan)) and r["kind"] == "generated":
                row[f"{name}, pooled (images independent)"] = (
                    f"{int(r[key])}/{int(r['n'])} = {r[key + '_pooled']:.3f} "
                    f"{interval(r[key + '_pooled_low'], r[key + '_pooled_high'], 3)}{mark}"
                )
            else:
                row[f"{name}, pooled (images independent)"] = DASH
        rows.append(row)
    return pd.DataFrame(rows)


def _p(value) -> str:
    return DASH if value is None or not np.isfinite(value) else f"{value:.3g}"


def comparisons_markdown(comparisons: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    rows = []
    for r in comparisons.to_dict(orient="records"):
        measure = "predicted AD (CNN)" if r["measure"] == "predicted_AD" else "misclassified"
        mark = "" if r["cnn_interpretable"] else f" {NOT_INTERPRETABLE}"
        rows.append(
            {
                "class": r["group"],
                "measure": measure + mark,
                "A": row_label(r["group"], r["condition_a"], conditions),
                "B": row_label(r["group"], r["condition_b"], conditions),
                "B − A (seed mean)": f"{r['difference']:+.3f} " + interval(r["low"], r["high"], 3),
                "paired t p": _p(r["p_value"]),
                "detectable (80% power)": f"±{fmt(r['detectable'], 3)}",
                "every seed same sign": r["sign_per_seed"],
                "pooled A: k/n": f"{r['k_a']}/{r['n_a']}",
                "pooled B: k/n": f"{r['k_b']}/{r['n_b']}",
                "pooled Fisher p (images independent)": _p(r["pooled_p_value"]),
            }
        )
    return pd.DataFrame(rows)


def summary_markdown(
    *,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    verdict: dict,
    sensitivity: pd.DataFrame,
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
) -> str:
    lines = header("Table 1 across replicate seeds", run_label, synthetic)
    seeds = verdict["seeds"]
    lines += [
        f"Seeds: {', '.join(map(str, seeds))} (each: its own DreamBooth models, images and CNN). "
        "The images of one seed share one model, so the seed is the unit. Generated sets: every "
        "figure is the mean of the per-seed values ± sd [Student-t 95% interval across seeds]; "
        "the counts pooled over seeds with a Wilson interval treat the images as independent "
        "and are secondary. Held-out reals and the ceiling sets (the same images in every seed) "
        "are counted once: log-likelihoods and morphometry across their images, the likelihood "
        "count over their images (Wilson), the CNN's across the seeds' CNNs.",
        "",
        markdown_table(summary_markdown_rows(summary, conditions)),
        "",
        "## Between conditions",
        "",
        "B − A: the mean of the per-seed differences with its t 95% interval, tested by a paired "
        "t-test across seeds (the seed pairs the two conditions through its CNN; with 3 seeds "
        "a random-effects model's variance is barely estimable, the paired t needs none); "
        "'detectable': the smallest difference these seeds detect with 80% power at the observed "
        "spread. Fisher's exact test on the counts pooled over seeds treats the images as "
        "independent and is secondary.",
        "",
        markdown_table(comparisons_markdown(comparisons, conditions)),
        "",
        "## Can the judges be trusted?",
        "",
        f"- KDE: {verdict_line(verdict)}",
        f"- Sensitivity: {sensitivity_line(sensitivity)}",
    ]
    across = verdict["cnn"]["across_seeds"]
    lines.append(
        "- CNN on held-out reals, across seeds: "
        + ", ".join(
            f"{k} {fmt(v['mean'], 3)} ± {fmt(v['sd'], 3)} {interval(v['low'], v['high'], 3)}"
            for k, v in across.items()
        )
        + "."
    )
    if (summary.get("cnn_interpretable") == False).any():  # noqa: E712 (NaN rows are not False)
        lines.append(
            f"- {NOT_INTERPRETABLE} CNN counts not interpretable in at least one seed: "
            + "; ".join(
                f"{set_label(r.condition, r.group, conditions)}: {r.ood_reason}"
                for r in summary.itertuples()
                if r.cnn_interpretable is False
            )
            + "."
        )
    return "\n".join(lines) + "\n"


def write_tables(
    *,
    inputs: Mapping[str, object],
    outputs: Mapping[str, object],
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
    provenance: Mapping[str, object],
    mad_k: float,
) -> None:
    """Format the evaluation into results/. ``inputs``: by_seed, summary, comparisons, verdict,
    set_metrics (one per seed, first seed first), sensitivity, kde, findings. ``outputs``: csv, md,
    vs_paper, summary_csv, summary_md, metrics, and optionally html and summary_html (the two
    Markdown tables as HTML pages for the report)."""
    by_seed = io.read_tsv(inputs["by_seed"]).astype({"condition": str}).fillna({"group": ""})
    summary = io.read_tsv(inputs["summary"]).astype({"condition": str})
    comparisons = io.read_tsv(inputs["comparisons"])
    verdict = io.read_json(inputs["verdict"])
    kde = io.read_json(inputs["kde"])
    sensitivity = pd.read_csv(inputs["sensitivity"])
    seeds = verdict["seeds"]
    metrics = [
        io.read_tsv(p).astype({"condition": str}).assign(seed=s)
        for s, p in zip(seeds, inputs["set_metrics"], strict=True)
    ]
    cnn = verdict["cnn"]["per_seed"][0] | {"seed": seeds[0]}
    cnn |= {"split_balance": verdict["cnn"]["split_balance"]}
    cnn |= _test_counts(by_seed, seeds[0])

    table = with_prob_intervals(table1_frame(by_seed, seeds[0], conditions), metrics[0], conditions)
    with io.atomic_path(outputs["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f", na_rep=DASH)
    md = header(
        "Table 1: KDE log-likelihood and CNN predictions of generated images", run_label, synthetic
    )
    md += [markdown_table(marked(table)), ""]
    from brainmr.report.findings import findings_lines  # it formats with this module's helpers

    md += findings_lines(io.read_json(inputs["findings"]), conditions) + [""]
    md += table1_notes(
        kde=kde,
        cnn=cnn,
        verdict=verdict,
        metrics=metrics[0],
        by_seed=by_seed,
        seed=seeds[0],
        mad_k=float(mad_k),
        sensitivity=sensitivity,
        conditions=conditions,
    )
    io.write_text(outputs["md"], "\n".join(md) + "\n")
    if "html" in outputs:
        io.write_text(outputs["html"], markdown_html("\n".join(md), "Table 1"))
    io.write_text(
        outputs["vs_paper"], vs_paper_markdown(table, run_label, synthetic, kde, cnn, provenance)
    )
    with io.atomic_path(outputs["summary_csv"]) as tmp:
        summary_frame(summary, conditions).to_csv(tmp, index=False, float_format="%.6g")
    summary_md = summary_markdown(
        summary=summary,
        comparisons=comparisons,
        verdict=verdict,
        sensitivity=sensitivity,
        conditions=conditions,
        run_label=run_label,
        synthetic=synthetic,
    )
    io.write_text(outputs["summary_md"], summary_md)
    if "summary_html" in outputs:
        io.write_text(outputs["summary_html"], markdown_html(summary_md, "Table 1 across seeds"))
    all_metrics = pd.concat(metrics, ignore_index=True)
    all_metrics.insert(
        0,
        "set",
        [
            set_label(c, g, conditions)
            for c, g in zip(all_metrics.condition, all_metrics.group, strict=True)
        ],
    )
    with io.atomic_path(outputs["metrics"]) as tmp:
        all_metrics.to_csv(tmp, index=False, float_format="%.6g")


def _test_counts(by_seed: pd.DataFrame, seed: int) -> dict:
    real = by_seed[(by_seed["seed"] == seed) & (by_seed["condition"] == REAL_CONDITION)]
    return {f"n_test_{r.group}": int(r.n_total) for r in real.itertuples()}
