"""Table 1 of the paper, regenerated from the per-image score TSVs, plus its reference rows,
its comparison with the paper and the extra metrics (memorization, fidelity/diversity).

Rows: one per (condition, class), labelled group + conditions[c]["label"], in config order, AD
before CN; means and CNN counts exclude outliers. Then the outlier row (all generated outliers),
then held-out real AD and CN through the same KDE and CNN (all of them; they set the threshold).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from brainmr import io
from brainmr.evaluate.classifier import extract_features, load_classifier
from brainmr.evaluate.config import EvaluateConfig
from brainmr.evaluate.images import load_normalised, require_columns
from brainmr.evaluate.metrics import (
    frechet_distance,
    memorization_summary,
    memorization_threshold,
    prdc,
)
from brainmr.evaluate.outliers import RULE, best_loglik, flag_outliers, outlier_threshold
from brainmr.evaluate.scoring import SCORE_COLUMNS

log = logging.getLogger(__name__)

GROUPS = ("AD", "CN")
DASH = "—"
COLUMNS = [
    "generated set",
    "AD log-lik",
    "CN log-lik",
    "predicted AD",
    "predicted CN",
    "misclassified (likelihood)",
]
N_COLUMN = "n"  # images behind the row's numbers (after outlier exclusion); not in the paper
OUTLIER_LABEL = "outlier"
REAL_LABEL = "held-out real {group}"

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


def read_scores(paths: list[Path], what: str) -> pd.DataFrame:
    frames = []
    for path in paths:
        table = io.read_tsv(path)
        require_columns(table, SCORE_COLUMNS, f"score table {path}")
        table = table.astype({"condition": str, "group": str, "path": str})
        frames.append(table.assign(source_tsv=str(path)))
    if not frames:
        raise ValueError(f"no {what} score tables given")
    return pd.concat(frames, ignore_index=True)


def summarise(scores: pd.DataFrame, group: str | None) -> dict:
    """One Table 1 row's numbers. group=None: the outlier row (means only)."""
    n = len(scores)
    mean = (lambda c: float(scores[c].mean())) if n else (lambda c: math.nan)
    row = {"AD log-lik": mean("loglik_AD"), "CN log-lik": mean("loglik_CN"), N_COLUMN: n}
    if group is None:
        return row | {c: DASH for c in COLUMNS[3:]}
    other = "CN" if group == "AD" else "AD"
    return row | {
        "predicted AD": int((scores["predicted"] == "AD").sum()),
        "predicted CN": int((scores["predicted"] == "CN").sum()),
        "misclassified (likelihood)": int(
            (scores[f"loglik_{other}"] > scores[f"loglik_{group}"]).sum()
        ),
    }


def table1_rows(generated: pd.DataFrame, real: pd.DataFrame, conditions: Mapping) -> pd.DataFrame:
    """``generated`` carries an ``outlier`` column; ``real`` is the held-out real scores."""
    rows = []
    for condition in conditions:
        for group in GROUPS:
            part = generated[(generated["condition"] == condition) & (generated["group"] == group)]
            kept = part[~part["outlier"]]
            label = row_label(group, condition, conditions)
            rows.append({"generated set": label} | summarise(kept, group))
    outliers = generated[generated["outlier"]]
    rows.append({"generated set": OUTLIER_LABEL} | summarise(outliers, None))
    for group in GROUPS:
        part = real[real["group"] == group]
        rows.append({"generated set": REAL_LABEL.format(group=group)} | summarise(part, group))
    return pd.DataFrame(rows, columns=[*COLUMNS, N_COLUMN])


def check_coverage(generated: pd.DataFrame, conditions: Mapping) -> None:
    found = set(
        zip(generated["condition"].astype(str), generated["group"].astype(str), strict=True)
    )
    wanted = {(c, g) for c in conditions for g in GROUPS}
    if missing := sorted(wanted - found):
        raise ValueError(f"no generated scores for (condition, group) {missing}")
    if extra := sorted(found - wanted):
        raise ValueError(f"generated scores for (condition, group) not in conditions: {extra}")


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


def metrics_table(
    generated: pd.DataFrame,
    real: pd.DataFrame,
    train: pd.DataFrame,
    conditions: Mapping,
    classifier: Path,
    cfg: EvaluateConfig,
) -> pd.DataFrame:
    """6a memorization and 6b fidelity/diversity per generated set, plus held-out reals as a
    reference (memorization: held-out vs train; fidelity: train slices vs held-out slices).
    All generated images count here, outliers included: a failed image is a fidelity failure."""
    threshold = memorization_threshold(real["nn_corr"].to_numpy(float), cfg.memorization_quantile)
    model = load_classifier(classifier)

    def features(paths) -> np.ndarray:
        return extract_features(model, load_normalised(paths), cfg.cnn_batch_size)

    real_features = {g: features(real.loc[real["group"] == g, "path"]) for g in GROUPS}
    rows = []
    sets = [(row_label(g, c, conditions), c, g) for c in conditions for g in GROUPS]
    for label, condition, group in sets:
        part = generated[(generated["condition"] == condition) & (generated["group"] == group)]
        fake = features(part["path"])
        reference = real_features[group]
        rows.append(
            {"set": label, "condition": condition, "group": group, "n": len(part)}
            | memorization_summary(part["nn_corr"].to_numpy(float), threshold)
            | {"memorization_threshold": threshold}
            | {"compared_with": REAL_LABEL.format(group=group), "n_compared": len(reference)}
            | {"frechet_distance": frechet_distance(fake, reference)}
            | prdc(reference, fake, cfg.knn_k)
        )
    for group in GROUPS:
        part = real[real["group"] == group]
        train_group = train[train["group"] == group]
        fake = features(train_group["path"])
        reference = real_features[group]
        rows.append(
            {"set": REAL_LABEL.format(group=group), "condition": "real", "group": group}
            | {"n": len(part)}
            | memorization_summary(part["nn_corr"].to_numpy(float), threshold)
            | {"memorization_threshold": threshold}
            | {"compared_with": f"train {group} vs held-out real {group}"}
            | {"n_compared": len(reference)}
            | {"frechet_distance": frechet_distance(fake, reference)}
            | prdc(reference, fake, cfg.knn_k)
        )
    return pd.DataFrame(rows)


def notes(
    kde: dict,
    cnn: dict,
    threshold: float,
    cfg: EvaluateConfig,
    outliers: pd.DataFrame,
    sources: list[str],
    real_path: Path,
    n_real: int,
) -> list[str]:
    bandwidths = ", ".join(f"{g} {h:.4g}" for g, h in kde["bandwidths"].items())
    n_per_class = ", ".join(f"{g} {n}" for g, n in kde["n_per_class"].items())
    rules = {g: s.get("rule", "") for g, s in kde.get("bandwidth_selection", {}).items()}
    auc = cnn.get("roc_auc")
    lines = [
        "## How these numbers were obtained",
        "",
        f"- KDE space: {kde['space']}; {kde['components']} components "
        f"({kde['explained_variance_total']:.1%} of variance); intensity normalisation: "
        f"{kde['normalisation']}.",
        f"- KDE: Gaussian kernel, one per class on its training slices "
        f"(n = {n_per_class}); bandwidths {bandwidths} "
        f"(chosen by: {'; '.join(f'{g}: {r}' for g, r in rules.items())}).",
        f"- Outlier rule: {RULE}, q = {cfg.outlier_quantile}, margin = {cfg.outlier_margin}; "
        f"threshold = {threshold:.2f} (from {n_real} held-out real slices). "
        f"{len(outliers)} generated outlier(s), excluded from the rows above.",
        f"- CNN (held-out test, n = {cnn.get('n_test_AD', '?')} AD + {cnn.get('n_test_CN', '?')} "
        f"CN): accuracy {fmt(cnn.get('accuracy'), 3)}, balanced accuracy "
        f"{fmt(cnn.get('balanced_accuracy'), 3)}, ROC AUC {fmt(auc, 3)}. Counts on generated "
        "images mean little unless this is well above chance.",
        "- 'misclassified (likelihood)': an image generated as one class whose likelihood under "
        "the other class's KDE is higher; 'predicted AD/CN': CNN P(AD) >= 0.5 or not.",
        "- The held-out real rows (not in the paper) pass real test slices through the same KDE "
        "and CNN; n = images behind each row's numbers.",
        f"- Per-image scores: {', '.join(sources)}; held-out real: {real_path}.",
        "- Extra metrics (memorization, Frechet distance, precision/recall/density/coverage in the "
        "CNN's feature space): metrics.csv beside this table.",
    ]
    if len(outliers):
        listed = ", ".join(
            f"{r.file} ({r.condition}/{r.group})" for r in outliers.head(20).itertuples()
        )
        more = f" and {len(outliers) - 20} more" if len(outliers) > 20 else ""
        lines.append(f"- Outliers: {listed}{more}.")
    return lines


def vs_paper_markdown(
    ours: pd.DataFrame,
    run_label: str,
    synthetic: bool,
    kde: dict,
    cnn: dict,
    cfg: EvaluateConfig,
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
        f"- Evaluation seed: {cfg.seed}; KDE: {kde['components']} PCA components, bandwidths "
        + ", ".join(f"{g} {h:.4g}" for g, h in kde["bandwidths"].items())
        + f"; CNN held-out balanced accuracy {fmt(cnn.get('balanced_accuracy'), 3)}, "
        f"AUC {fmt(cnn.get('roc_auc'), 3)}.",
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


def build_table1(
    *,
    generated: list[Path],
    real: Path,
    conditions: Mapping,
    kde_json: Path,
    classifier_metrics: Path,
    classifier: Path,
    train: pd.DataFrame,
    cfg: EvaluateConfig,
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_vs_paper: Path,
    out_metrics: Path,
    out_outliers: Path,
    provenance: Mapping[str, object] | None = None,
) -> None:
    """Table 1 (csv + md), the comparison with the paper, metrics.csv and the outlier list, all
    from the per-image score TSVs (``generated``: one per condition x group; ``real``: held-out
    real slices). ``provenance``: lines for the comparison (base model, seeds, steps...)."""
    require_columns(train, ["path", "group"], "training table")
    generated_scores = read_scores([Path(p) for p in generated], "generated")
    real_scores = read_scores([Path(real)], "held-out real")
    check_coverage(generated_scores, conditions)
    kde = json.loads(Path(kde_json).read_text(encoding="utf-8"))
    cnn = json.loads(Path(classifier_metrics).read_text(encoding="utf-8"))

    threshold = outlier_threshold(
        best_loglik(real_scores), cfg.outlier_quantile, cfg.outlier_margin
    )
    generated_scores["best_loglik"] = best_loglik(generated_scores)
    generated_scores["outlier"] = flag_outliers(generated_scores["best_loglik"], threshold)
    outliers = generated_scores[generated_scores["outlier"]]
    log.info("outlier threshold %.2f: %d generated outlier(s)", threshold, len(outliers))

    table = table1_rows(generated_scores, real_scores, conditions)
    metrics = metrics_table(generated_scores, real_scores, train, conditions, classifier, cfg)

    outlier_columns = ["path", "file", "condition", "group", "loglik_AD", "loglik_CN"]
    io.write_tsv(
        out_outliers,
        outliers[[*outlier_columns, "best_loglik", "source_tsv"]].assign(threshold=threshold),
    )
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f", na_rep=DASH)
    sources = sorted(generated_scores["source_tsv"].unique())
    md = header(
        "Table 1: KDE log-likelihood and CNN predictions of generated images", run_label, synthetic
    )
    md += [markdown_table(table), ""]
    md += notes(kde, cnn, threshold, cfg, outliers, sources, Path(real), len(real_scores))
    io.write_text(out_md, "\n".join(md) + "\n")
    io.write_text(
        out_vs_paper,
        vs_paper_markdown(table, run_label, synthetic, kde, cnn, cfg, provenance or {}),
    )
    with io.atomic_path(out_metrics) as tmp:
        metrics.to_csv(tmp, index=False, float_format="%.6g")
