"""The remedies table (results/remedies.csv and .md) and its forest plot, formatted from
brainmr.evaluate.studies.remedies' comparison table; nothing is computed here."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import GROUPS, io  # noqa: E402
from brainmr.report.figures import interval_point  # noqa: E402
from brainmr.report.format import (  # noqa: E402
    DASH,
    NOT_INTERPRETABLE,
    figure_title,
    fmt,
    header,
    interval,
    p_value,
)

MEASURE_NAMES = {"cnn_AD": "predicted AD (CNN)", "likelihood_AD": "AD by likelihood"}
MEASURES = tuple(MEASURE_NAMES)


def _signed(value, prefix: str = "+") -> str:
    if value is None or not np.isfinite(value):
        return DASH
    return f"±{value:.2f}" if prefix == "±" else f"{value:+.2f}"


def _signed_interval(low, high) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return DASH
    return f"[{low:+.2f}, {high:+.2f}]"


def _fraction_interval(low, high) -> str:
    """A t interval of a mean fraction, clipped to [0, 1] where a fraction lives."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return DASH
    return interval(max(0.0, low), min(1.0, high))


def remedies_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (the baseline first): per class of images and measure, the mean
    across seeds of the per-seed fraction with its t interval and, for a remedy, the paired
    effect against the baseline (t interval, paired t p, detectable difference, sign per seed);
    then the pooled figures (Wilson interval, Fisher's p and odds ratio), images treated as
    independent."""
    rows = []
    for condition, part in table.groupby("condition", sort=False):
        row = {"condition": condition, "role": part["role"].iloc[0]}
        row["seeds"] = int(part["seeds"].iloc[0])
        for r in part.itertuples():
            key = f"{r.images} images, {MEASURE_NAMES[r.measure]}"
            row[f"{key}: seed mean"] = r.seed_mean
            row[f"{key}: seed t 95% CI"] = _fraction_interval(r.seed_low, r.seed_high)
            if r.role == "remedy":
                row[f"{key}: effect vs baseline (paired)"] = r.effect
                row[f"{key}: effect t 95% CI"] = _signed_interval(r.effect_low, r.effect_high)
                row[f"{key}: p (paired t)"] = r.p_value
                row[f"{key}: detectable (80% power)"] = r.detectable
                row[f"{key}: seeds agree"] = r.sign_per_seed
            row[f"{key}: pooled k/n"] = f"{int(r.pooled_k)}/{int(r.pooled_n)}"
            row[f"{key}: pooled fraction"] = r.pooled_fraction
            row[f"{key}: pooled Wilson 95% CI (images independent)"] = interval(
                r.pooled_low, r.pooled_high
            )
            if r.role == "remedy":
                row[f"{key}: pooled effect"] = r.pooled_effect
                row[f"{key}: pooled Fisher p (images independent)"] = r.pooled_p_value
                row[f"{key}: pooled odds ratio"] = r.pooled_odds_ratio
            if r.measure == "cnn_AD":
                row[f"{r.images} images: CNN interpretable"] = bool(r.interpretable)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(r) -> str:
    """Headline: seed mean [t CI]; effect [t CI], paired t p, detectable, seeds agree."""
    mark = "" if r.interpretable else f" {NOT_INTERPRETABLE}"
    text = f"{fmt(r.seed_mean)} {_fraction_interval(r.seed_low, r.seed_high)}{mark}"
    if r.role == "remedy":
        text += (
            f"; effect {_signed(r.effect)} {_signed_interval(r.effect_low, r.effect_high)}, "
            + (
                f"{r.note}, "
                if isinstance(getattr(r, "note", None), str) and r.note
                else f"p {p_value(r.p_value)} (paired t), detectable {_signed(r.detectable, '±')}, "
            )
            + f"{r.sign_per_seed}"
        )
    return text


def _pooled_cell(r) -> str:
    """Secondary: pooled k/n, fraction [Wilson], effect, Fisher p and odds ratio."""
    mark = "" if r.interpretable else f" {NOT_INTERPRETABLE}"
    text = (
        f"{int(r.pooled_k)}/{int(r.pooled_n)} = {fmt(r.pooled_fraction)} "
        f"{interval(r.pooled_low, r.pooled_high)}{mark}"
    )
    if r.role == "remedy":
        text += (
            f"; {_signed(r.pooled_effect)}, Fisher p {p_value(r.pooled_p_value)}, "
            f"OR {fmt(r.pooled_odds_ratio)}"
        )
    return text


def _table(table: pd.DataFrame, baseline: str, cell) -> list[str]:
    columns = [f"{g} images: {MEASURE_NAMES[m]}" for g in GROUPS for m in MEASURES]
    lines = [
        "| condition | seeds | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for condition, part in table.groupby("condition", sort=False):
        cells = []
        for group in GROUPS:
            for measure in MEASURES:
                (r,) = part[(part["images"] == group) & (part["measure"] == measure)].itertuples()
                cells.append(cell(r))
        name = condition + (" (baseline)" if condition == baseline else "")
        lines.append(f"| {name} | {int(part['seeds'].iloc[0])} | " + " | ".join(cells) + " |")
    return lines


def remedies_markdown(table: pd.DataFrame, run_label: str, synthetic: bool) -> str:
    lines = header("Which remedy lets DreamBooth generate AD?", run_label, synthetic)
    baseline = table.loc[table["role"] == "baseline", "condition"].iloc[0]
    lines += _table(table, baseline, _cell)
    lines += [
        "",
        "Each cell: fraction of the generated images (outliers removed) judged AD, as the mean "
        "across seeds of each seed's fraction with its Student-t 95% interval (clipped to "
        f"[0, 1]); for a remedy, then its effect against the baseline ({baseline}): the mean "
        "of the per-seed "
        "differences (remedy minus baseline, same seed) with its t 95% interval, the paired t "
        "test's p-value, the smallest difference these seeds detect with 80% power at the "
        "observed spread (detectable), and whether every seed's difference has the same sign.",
        "The seed is the unit: a seed's images all come from one DreamBooth model, so they are "
        "not independent, and a test that counts images as independent overstates the evidence. "
        "With 3 seeds the paired t test has little power; the detectable column says how "
        "little: an effect smaller than it can go unnoticed.",
        "A remedy works where AD images gain in both measures while CN images do not: a remedy "
        "that turns every image into AD is no remedy.",
        f"{NOT_INTERPRETABLE} CNN figures not interpretable: in at least one seed the set lies "
        "outside the CNN's training distribution (precision/coverage in CNN features below the "
        "out-of-distribution rule of Table 1).",
        "",
        "### Pooled over seeds, images treated as independent (secondary)",
        "",
    ]
    lines += _table(table, baseline, _pooled_cell)
    lines += [
        "",
        "Each cell: images judged AD out of all seeds' images, with its Wilson 95% interval; for "
        "a remedy, the pooled difference from the baseline, Fisher's exact p on the pooled "
        "counts and the odds ratio (remedy over baseline). These treat every image as "
        "independent and so overstate the evidence; read the table above. All figures are in "
        "remedies.csv.",
    ]
    return "\n".join(lines) + "\n"


def remedies_forest(table: pd.DataFrame, run_label: str, synthetic: bool):
    """Per condition and class of images: the fraction judged AD by the CNN and by likelihood,
    as the mean across seeds with its Student-t 95% interval (clipped to [0, 1]; none drawn
    for one seed); hollow where the CNN figure is not interpretable; the baseline's mean as a
    dashed line."""
    conditions = list(dict.fromkeys(table["condition"]))
    baseline = table.loc[table["role"] == "baseline", "condition"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(conditions) * len(GROUPS) + 1.8))
    colours = {"AD": "tab:red", "CN": "tab:blue"}
    ticks, labels = [], []
    for ax, measure in zip(axes, MEASURES, strict=True):
        y = 0.0
        for condition in conditions:
            for group in GROUPS:
                (r,) = table[
                    (table["condition"] == condition)
                    & (table["images"] == group)
                    & (table["measure"] == measure)
                ].itertuples()
                low = max(0.0, r.seed_low) if np.isfinite(r.seed_low) else r.seed_mean
                high = min(1.0, r.seed_high) if np.isfinite(r.seed_high) else r.seed_mean
                interval_point(
                    ax, r.seed_mean, -y, low, high, colours[group], filled=bool(r.interpretable)
                )
                if condition == baseline:
                    ax.axvline(r.seed_mean, color=colours[group], lw=1, ls="--", alpha=0.5)
                if measure == "cnn_AD":
                    ticks.append(-y)
                    labels.append(f"{condition}: {group} images")
                y += 1
            y += 0.5
        ax.set(xlim=(-0.02, 1.02), xlabel=f"fraction {MEASURE_NAMES[measure]}")
        ax.set_yticks(ticks, labels if measure == "cnn_AD" else [""] * len(ticks), fontsize=8)
    text = (
        "Judged AD, mean across seeds (Student-t 95%); dashed: baseline; hollow: CNN not "
        "interpretable (OOD)"
    )
    fig.suptitle(figure_title(text, run_label, synthetic), fontsize=9)
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
    data = io.read_tsv(table)
    with io.atomic_path(out_csv) as tmp:
        remedies_frame(data).to_csv(tmp, index=False, float_format="%.6g")
    io.write_text(out_md, remedies_markdown(data, run_label, synthetic))
    io.save_figure(out_forest, remedies_forest(data, run_label, synthetic))
