"""The morphometric judge's tables and figure, formatted from brainmr.evaluate.judges.morphometry's
tables: nothing is computed here but layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import GROUPS, io  # noqa: E402
from brainmr.evaluate.ceiling import CEILING_PREFIX, is_ceiling  # noqa: E402
from brainmr.evaluate.judges.morphometry import (  # noqa: E402
    HELD_OUT,
    MEASURE_LABELS,
    MEASURES,
    TRAIN,
)
from brainmr.evaluate.table1.differences import per_image_measures  # noqa: E402
from brainmr.report.format import (  # noqa: E402
    figure_title,
    fmt,
    header,
    interval,
    markdown_table,
)
from brainmr.report.labels import row_label  # noqa: E402

GROUP_COLOURS = {"AD": "tab:red", "CN": "tab:blue"}
COLUMNS = [
    "source",
    "AD mean",
    "CN mean",
    "AD − CN [95% CI]",
    "interval",
    "share of the held-out reals' AD − CN difference reproduced [95% CI]",
]


def _digits(measure: str) -> int:
    return 3 if measure == "csf_fraction" else 1


def _pct(value) -> str:
    return fmt(value) if not np.isfinite(value) else f"{100 * value:.0f}%"


def _per_seed(rows: pd.DataFrame) -> str:
    values = ", ".join(_pct(v) for v in rows["fraction_reproduced"])
    return (
        f" (per seed: {values})" if len(rows) and rows["fraction_reproduced"].notna().any() else ""
    )


def share_cell(r: pd.Series) -> str:
    """The share reproduced in percent with its interval and what that interval is, or why
    there is none (the real difference is not established)."""
    if isinstance(r["fraction_status"], str) and r["fraction_status"]:
        return r["fraction_status"]
    text = f"{_pct(r['fraction_reproduced'])}"
    if np.isfinite(r["fraction_low"]):
        text += f" [{_pct(r['fraction_low'])}, {_pct(r['fraction_high'])}]"
        text += f" ({r['fraction_interval']})"
    return text


def morphometry_markdown(diffs: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """One Markdown table per measure: held-out reals, train reals, then each set's across-seed
    row with its per-seed fractions. ``labels``: display label per source (default: its name)."""
    lines = []
    for measure in MEASURES:
        part = diffs[diffs["measure"] == measure]
        if part.empty:
            continue
        digits = _digits(measure)
        sources = [HELD_OUT, TRAIN]
        sources += [s for s in dict.fromkeys(part["source"]) if s not in sources]
        rows = []
        for source in sources:
            rows_of = part[part["source"] == source]
            across = rows_of[rows_of["seed"].astype(str) == "all"]
            if across.empty:
                continue
            r = across.iloc[0]
            fraction = share_cell(r)
            if source not in (HELD_OUT, TRAIN):
                fraction += _per_seed(rows_of[rows_of["seed"].astype(str) != "all"])
            rows.append(
                [
                    labels.get(source, source),
                    fmt(r["AD_mean"], digits),
                    fmt(r["CN_mean"], digits),
                    f"{fmt(r['difference'], digits)} {interval(r['low'], r['high'], digits)}",
                    r["interval"],
                    fraction,
                ]
            )
        lines += [f"### {MEASURE_LABELS[measure]}", ""]
        lines += [markdown_table(pd.DataFrame(rows, columns=COLUMNS)), ""]
    return "\n".join(lines)


def morphometry_figure(per_image: pd.DataFrame, labels: Mapping[str, str], title: str):
    """One panel per measure: box plots with the images as points, per source (in order of
    appearance) and class (AD red, CN blue)."""
    sources = list(dict.fromkeys(per_image["source"]))
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 4.0), squeeze=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same figure from the same table
    width = 0.35
    for ax, measure in zip(axes[0], MEASURES, strict=True):
        for i, source in enumerate(sources):
            for j, group in enumerate(GROUPS):
                values = per_image.loc[
                    (per_image["source"] == source) & (per_image["group"] == group), measure
                ].to_numpy(float)
                values = values[np.isfinite(values)]
                if values.size == 0:
                    continue
                x = i + (j - 0.5) * width
                colour = GROUP_COLOURS.get(group, "grey")
                ax.boxplot(
                    values,
                    positions=[x],
                    widths=width * 0.8,
                    showfliers=False,
                    patch_artist=True,
                    boxprops={"facecolor": "none", "edgecolor": colour},
                    medianprops={"color": colour},
                    whiskerprops={"color": colour},
                    capprops={"color": colour},
                )
                jitter = rng.uniform(-width * 0.25, width * 0.25, values.size)
                ax.scatter(x + jitter, values, s=6, color=colour, alpha=0.5, linewidths=0)
        ax.set_xticks(range(len(sources)))
        ax.set_xticklabels([labels.get(s, s) for s in sources], rotation=30, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(sources) - 0.4)
        ax.set_title(MEASURE_LABELS[measure], fontsize=9)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=GROUP_COLOURS[g], label=g)
        for g in GROUPS
    ]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def source_labels(sources, conditions: Mapping) -> dict[str, str]:
    """Display labels: a condition by its Table 1 label, a ceiling set as reals through it."""
    labels = {}
    for source in sources:
        if is_ceiling(source):
            labels[source] = (
                f"held-out reals through the generator ({source[len(CEILING_PREFIX) :]})"
            )
        elif source in conditions:
            labels[source] = row_label("generated", source, conditions)
    return labels


def write_morphometry(
    *,
    morphometry: Path,
    references: Path,
    scores: list[Path],
    conditions: Mapping,
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_figure: Path,
) -> None:
    """morphometry.csv/.md from evaluate's differences table, and the figure of every image's
    measures: held-out reals and ceiling sets from their seed-free table, the generated sets of
    every seed; outliers left out as in Table 1."""
    diffs = io.read_tsv(morphometry).astype({"seed": str})  # seeds and "all"
    per_image = per_image_measures(io.read_tsv(references), [io.read_tsv(p) for p in scores])
    sources = list(dict.fromkeys(per_image["source"]))
    labels = source_labels(sources + list(diffs["source"].unique()), conditions)
    with io.atomic_path(out_csv) as tmp:
        diffs.assign(label=diffs["source"].map(lambda s: labels.get(s, s))).to_csv(
            tmp, index=False, float_format="%.6g"
        )
    lines = header(
        "Morphometric judge: the AD − CN anatomy of real and generated slices", run_label, synthetic
    )
    lines += [morphometry_markdown(diffs, labels)]
    io.write_text(out_md, "\n".join(lines) + "\n")
    title = figure_title("Morphometry per image (outliers excluded)", run_label, synthetic)
    io.save_figure(out_figure, morphometry_figure(per_image, labels, title))
