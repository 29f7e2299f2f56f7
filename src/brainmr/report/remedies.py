"""The remedies table (results/remedies.csv and .md) and its forest plot, formatted from
brainmr.evaluate.remedies' comparison table; nothing is computed here."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import GROUPS, io  # noqa: E402
from brainmr.report.figures import _title, interval_point  # noqa: E402
from brainmr.report.tables import NOT_INTERPRETABLE, fmt, header, interval  # noqa: E402

MEASURE_NAMES = {"cnn_AD": "predicted AD (CNN)", "likelihood_AD": "AD by likelihood"}


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def remedies_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (the baseline first): per class of images and measure, the pooled
    fraction with its Wilson interval, the mean across seeds with its t interval, the effect
    against the baseline and Fisher's p-value."""
    rows = []
    for condition, part in table.groupby("condition", sort=False):
        row = {"condition": condition, "role": part["role"].iloc[0]}
        row["seeds"] = int(part["seeds"].iloc[0])
        for r in part.itertuples():
            key = f"{r.images} images, {MEASURE_NAMES[r.measure]}"
            row[f"{key}: k/n"] = f"{int(r.k)}/{int(r.n)}"
            row[f"{key}: fraction"] = r.fraction
            row[f"{key}: pooled 95% CI"] = interval(r.pooled_low, r.pooled_high)
            row[f"{key}: seed mean"] = r.seed_mean
            row[f"{key}: across-seed 95% CI"] = interval(r.seed_low, r.seed_high)
            if r.role == "remedy":
                row[f"{key}: effect vs baseline"] = r.effect
                row[f"{key}: p"] = r.p_value
                row[f"{key}: seeds agree"] = r.sign_per_seed
            if r.measure == "cnn_AD":
                row[f"{r.images} images: CNN interpretable"] = bool(r.interpretable)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(r, with_effect: bool) -> str:
    mark = "" if r.interpretable else f" {NOT_INTERPRETABLE}"
    text = f"{fmt(r.fraction)} [{fmt(r.pooled_low)}, {fmt(r.pooled_high)}]{mark}"
    if with_effect and r.role == "remedy":
        text += f"; {r.effect:+.2f}, p {_p(r.p_value)} ({r.sign_per_seed})"
    return text


def remedies_markdown(table: pd.DataFrame, run_label: str, synthetic: bool) -> str:
    lines = header("Which remedy lets DreamBooth generate AD?", run_label, synthetic)
    baseline = table.loc[table["role"] == "baseline", "condition"].iloc[0]
    columns = [
        f"{g} images: {MEASURE_NAMES[m]}" for g in GROUPS for m in ("cnn_AD", "likelihood_AD")
    ]
    lines += [
        "| condition | seeds | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for condition, part in table.groupby("condition", sort=False):
        cells = []
        for group in GROUPS:
            for measure in ("cnn_AD", "likelihood_AD"):
                (r,) = part[(part["images"] == group) & (part["measure"] == measure)].itertuples()
                cells.append(_cell(r, with_effect=True))
        name = condition + (" (baseline)" if condition == baseline else "")
        lines.append(f"| {name} | {int(part['seeds'].iloc[0])} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each cell: fraction of the generated images (outliers removed) judged AD, pooled over "
        "the seeds, with its Wilson 95% interval; for a remedy, then its effect against the "
        f"baseline ({baseline}), Fisher's exact p on the pooled counts, and whether every seed's "
        "difference has the same sign. The across-seed means with Student-t 95% intervals are in "
        "remedies.csv.",
        "A remedy works where AD images gain in both measures while CN images do not: a remedy "
        "that turns every image into AD is no remedy.",
        f"{NOT_INTERPRETABLE} CNN figures not interpretable: in at least one seed the set lies "
        "outside the CNN's training distribution (precision/coverage in CNN features below the "
        "out-of-distribution rule of Table 1).",
    ]
    return "\n".join(lines) + "\n"


def remedies_forest(table: pd.DataFrame, run_label: str, synthetic: bool):
    """Per condition and class of images: the fraction judged AD by the CNN and by likelihood,
    pooled over seeds with Wilson 95% intervals; hollow where the CNN figure is not
    interpretable; the baseline's fraction as a dashed line."""
    conditions = list(dict.fromkeys(table["condition"]))
    baseline = table.loc[table["role"] == "baseline", "condition"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(conditions) * len(GROUPS) + 1.8))
    colours = {"AD": "tab:red", "CN": "tab:blue"}
    ticks, labels = [], []
    for ax, measure in zip(axes, ("cnn_AD", "likelihood_AD"), strict=True):
        y = 0.0
        for condition in conditions:
            for group in GROUPS:
                (r,) = table[
                    (table["condition"] == condition)
                    & (table["images"] == group)
                    & (table["measure"] == measure)
                ].itertuples()
                interval_point(
                    ax,
                    r.fraction,
                    -y,
                    r.pooled_low,
                    r.pooled_high,
                    colours[group],
                    filled=bool(r.interpretable),
                )
                if condition == baseline:
                    ax.axvline(r.fraction, color=colours[group], lw=1, ls="--", alpha=0.5)
                if measure == "cnn_AD":
                    ticks.append(-y)
                    labels.append(f"{condition}: {group} images")
                y += 1
            y += 0.5
        ax.set(xlim=(-0.02, 1.02), xlabel=f"fraction {MEASURE_NAMES[measure]}")
        ax.set_yticks(ticks, labels if measure == "cnn_AD" else [""] * len(ticks), fontsize=8)
    text = (
        "Judged AD, pooled over seeds (Wilson 95%); dashed: baseline; hollow: CNN not "
        "interpretable (OOD)"
    )
    fig.suptitle(_title(text, run_label, synthetic), fontsize=9)
    fig.tight_layout()
    return fig


def write_remedies(
    *,
    table: Path,
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_forest: Path,
) -> None:
    data = io.read_tsv(table).astype({"condition": str, "images": str})
    with io.atomic_path(out_csv) as tmp:
        remedies_frame(data).to_csv(tmp, index=False, float_format="%.6g")
    io.write_text(out_md, remedies_markdown(data, run_label, synthetic))
    io.save_figure(out_forest, remedies_forest(data, run_label, synthetic))
