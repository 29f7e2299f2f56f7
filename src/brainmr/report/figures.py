"""Figure 1 (real beside generated images), likelihood histograms, memorization pairs, and the
forest plot of Table 1's fractions across seeds. All read the evaluation's tables, so they show
exactly what the tables count."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import GROUPS, io  # noqa: E402
from brainmr.evaluate.judges.outliers import best_loglik, flagged_sets  # noqa: E402
from brainmr.evaluate.table1.replicates import OUTLIER_SET  # noqa: E402
from brainmr.io import load_image  # noqa: E402
from brainmr.report.format import figure_title  # noqa: E402
from brainmr.report.labels import REAL_LABEL, row_label, set_label  # noqa: E402

OUTLIER_COLOUR = "tab:red"


def _show(ax, path: str, caption: str = "", colour: str = "black") -> None:
    ax.imshow(load_image(path), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if caption:
        ax.set_title(caption, fontsize=6, color=colour)
    if colour != "black":
        for spine in ax.spines.values():
            spine.set(color=colour, linewidth=2.5)


def figure1(
    generated: pd.DataFrame,
    real: pd.DataFrame,
    conditions: Mapping,
    outlier_files: set[str],
    run_label: str,
    synthetic: bool,
    n_columns: int = 8,
):
    """Rows: held-out real AD, real CN, then each condition x class (first images in file
    order, so the choice is not cherry-picked); outliers framed in red."""
    rows = [(f"{REAL_LABEL.format(group=g)}", real[real["group"] == g]) for g in GROUPS]
    for condition in conditions:
        for g in GROUPS:
            part = generated[(generated["condition"] == condition) & (generated["group"] == g)]
            prompt = conditions[condition].prompts[g]
            label = f'generated {row_label(g, condition, conditions)}\n"{prompt}"'
            rows.append((label, part.sort_values("file")))
    fig, axes = plt.subplots(
        len(rows), n_columns, figsize=(1.25 * n_columns + 1.6, 1.35 * len(rows)), squeeze=False
    )
    for r, (label, part) in enumerate(rows):
        for c in range(n_columns):
            ax = axes[r, c]
            if c >= len(part):
                ax.axis("off")
                continue
            item = part.iloc[c]
            is_outlier = item["path"] in outlier_files
            caption = "outlier" if is_outlier else ""
            _show(ax, item["path"], caption, OUTLIER_COLOUR if is_outlier else "black")
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(
        figure_title("Figure 1: real and generated slices", run_label, synthetic), fontsize=9
    )
    fig.tight_layout()
    return fig


def histograms(
    generated: pd.DataFrame,
    real: pd.DataFrame,
    conditions: Mapping,
    threshold: float,
    run_label: str,
    synthetic: bool,
):
    """Per class: log-likelihood under that class's KDE, held-out real vs each generated set;
    last panel: best log-likelihood of all images against the outlier threshold."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    # x range from the held-out reals and the threshold; far-off failures are piled into the
    # first bin (and counted) rather than squeezing every other image into one bin
    real_best = best_loglik(real)
    top = max(real[["loglik_AD", "loglik_CN"]].to_numpy().max(), best_loglik(generated).max())
    low = min(threshold, real_best.min())
    low -= 0.25 * (top - low)
    bins = np.linspace(low, top, 40)

    def hist(ax, values, **style) -> int:
        values = np.asarray(values, dtype=float)
        ax.hist(np.maximum(values, low), bins=bins, density=True, **style)
        return int(np.sum(values < low))

    for ax, g in zip(axes[:2], GROUPS, strict=True):
        column = f"loglik_{g}"
        below = hist(
            ax,
            real.loc[real["group"] == g, column],
            alpha=0.45,
            color="grey",
            label=REAL_LABEL.format(group=g),
        )
        for condition in conditions:
            part = generated[(generated["condition"] == condition) & (generated["group"] == g)]
            below += hist(
                ax,
                part[column],
                histtype="step",
                lw=1.8,
                label=f"generated {row_label(g, condition, conditions)}",
            )
        ax.set(xlabel=f"log-likelihood under the {g} KDE", ylabel="density", title=f"class {g}")
        _note_below(ax, below, low)
        ax.legend(fontsize=7)
    ax = axes[2]
    below = hist(ax, real_best, alpha=0.45, color="grey", label="held-out real")
    below += hist(
        ax,
        best_loglik(generated),
        histtype="step",
        lw=1.8,
        color="tab:blue",
        label="generated (all sets)",
    )
    ax.axvline(threshold, color=OUTLIER_COLOUR, ls="--", label=f"outlier threshold {threshold:.1f}")
    ax.set(xlabel="best log-likelihood (max over classes)", title="outlier rule")
    _note_below(ax, below, low)
    ax.legend(fontsize=7)
    fig.suptitle(figure_title("KDE log-likelihoods", run_label, synthetic), fontsize=9)
    fig.tight_layout()
    return fig


def _note_below(ax, count: int, low: float) -> None:
    if count:
        ax.annotate(
            f"{count} image(s) below {low:.0f}\nshown in the first bin",
            (0.02, 0.6),
            xycoords="axes fraction",
            fontsize=7,
            color=OUTLIER_COLOUR,
        )


def memorization_figure(
    generated: pd.DataFrame,
    threshold: float,
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
    n_pairs: int = 6,
):
    """The generated images most correlated with a training slice, above that slice."""
    top = generated.sort_values("nn_corr", ascending=False).head(n_pairs)
    fig, axes = plt.subplots(
        2, max(len(top), 1), figsize=(1.8 * max(len(top), 1) + 0.8, 4.2), squeeze=False
    )
    for c, (_, item) in enumerate(top.iterrows()):
        above = item["nn_corr"] > threshold
        colour = OUTLIER_COLOUR if above else "black"
        label = row_label(item["group"], item["condition"], conditions)
        _show(
            axes[0, c], item["path"], f"{label}\n{item['file']}\nr = {item['nn_corr']:.3f}", colour
        )
        _show(axes[1, c], item["nn_path"], f"train\n{Path(item['nn_path']).name}")
    axes[0, 0].set_ylabel("generated", fontsize=8)
    axes[1, 0].set_ylabel("nearest train", fontsize=8)
    text = (
        f"Closest generated/train pairs (Pearson r); red: above the memorization threshold "
        f"{threshold:.3f}"
    )
    fig.suptitle(figure_title(text, run_label, synthetic), fontsize=9)
    fig.tight_layout(h_pad=1.5)
    return fig


def interval_point(ax, value, y, low, high, colour, filled: bool = True) -> None:
    """A fraction with its interval on a forest plot; hollow where it is not to be trusted."""
    ax.errorbar(
        value,
        y,
        xerr=[[value - low], [high - value]],
        fmt="o",
        color=colour,
        mfc=colour if filled else "white",
        capsize=3,
    )


def forest_plot(summary: pd.DataFrame, conditions: Mapping, run_label: str, synthetic: bool):
    """Predicted-AD fraction (CNN) and misclassified fraction (likelihood) per set: the mean of
    the per-seed fractions with its t interval across seeds (the seed is the unit; real and
    ceiling rows: once, over their images); sets whose CNN counts are not interpretable are
    hollow."""
    sets = summary[summary["condition"] != OUTLIER_SET].reset_index(drop=True)
    labels = [set_label(r.condition, r.group, conditions) for r in sets.itertuples()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(sets) + 1.8), sharey=True)
    y = np.arange(len(sets))[::-1]
    panels = [
        ("predicted_AD", "fraction predicted AD (CNN)"),
        ("misclassified", "fraction misclassified (likelihood)"),
    ]
    for ax, (column, title) in zip(axes, panels, strict=True):
        for yi, row in zip(y, sets.itertuples(), strict=True):
            value = getattr(row, f"{column}_seed_mean")
            low, high = getattr(row, f"{column}_seed_low"), getattr(row, f"{column}_seed_high")
            trusted = column != "predicted_AD" or bool(row.cnn_interpretable)
            colour = "grey" if row.kind in ("real", "ceiling") else "tab:blue"
            interval_point(ax, value, yi, low, high, colour, filled=trusted)
        ax.axvline(0.5, color="lightgrey", lw=1, ls=":")
        ax.set(xlim=(-0.02, 1.02), xlabel=title)
    axes[0].set_yticks(y, labels, fontsize=8)
    text = (
        "Mean of per-seed fractions, t 95% intervals across seeds; hollow: CNN counts not "
        "interpretable (OOD)"
    )
    fig.suptitle(figure_title(text, run_label, synthetic), fontsize=9)
    fig.tight_layout()
    return fig


def make_figures(
    *,
    scores: Path,
    set_metrics: Path,
    summary: Path,
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
    out_figure1: Path,
    out_forest: Path,
    out_histograms: Path,
    out_memorization: Path,
) -> None:
    """Figures of the first seed's flagged scores (Figure 1, histograms, memorization) and of the
    summary across seeds (forest plot). Thresholds are read, never recomputed."""
    table = io.read_tsv(scores)
    generated, real, threshold, outlier_files = flagged_sets(table)
    mem = float(io.read_tsv(set_metrics)["memorization_threshold"].iloc[0])
    io.save_figure(
        out_figure1, figure1(generated, real, conditions, outlier_files, run_label, synthetic)
    )
    io.save_figure(
        out_histograms, histograms(generated, real, conditions, threshold, run_label, synthetic)
    )
    io.save_figure(
        out_memorization, memorization_figure(generated, mem, conditions, run_label, synthetic)
    )
    summary_table = io.read_tsv(summary)
    io.save_figure(out_forest, forest_plot(summary_table, conditions, run_label, synthetic))
