"""The instruction-following tables and figures, formatted from
brainmr.evaluate.studies.following's long
table and images table: nothing is computed here but layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import (  # noqa: E402
    GROUPS,
    SEXES,  # noqa: E402
    io,
)
from brainmr.evaluate.judges.morphometry import HELD_OUT  # noqa: E402
from brainmr.evaluate.studies.following import (  # noqa: E402
    ACROSS,
    GENERATED,
    ROLES,
    instructed_images,
    sex_confusion,
)
from brainmr.io import as_bool  # noqa: E402
from brainmr.report.format import (  # noqa: E402
    DASH,
    NOT_INTERPRETABLE,
    figure_title,
    fmt,
    header,
    interval,
    markdown_table,
)

TITLE = "Instruction following beyond the class: age and sex"
# (figure, column heading, digits)
FIGURE_COLUMNS = [
    ("age_r", "age r", 2),
    ("age_slope", "age slope (predicted on requested)", 2),
    ("age_mae", "age MAE (years)", 1),
    ("sex_accuracy", "sex accuracy", 2),
    ("sex_auc", "sex AUC", 2),
    ("ventricle_slope", "ventricle slope (mm²/year)", 1),
    ("brain_area_M_minus_F", "brain area M − F (mm²)", 0),
]
GROUP_COLOURS = {"AD": "tab:red", "CN": "tab:blue"}
REAL_LABELS = {g: f"held-out real {g}" for g in GROUPS} | {"all": "held-out reals, both groups"}


UNREAD = "‡"  # the judge does not read its attribute on held-out reals


def _figure_cells(row, marked: bool = False) -> list[str]:
    """Value [interval] per figure; with ``marked``, the figures of a judge that does not read
    its attribute on held-out reals carry ‡."""
    cells = []
    for figure, _, digits in FIGURE_COLUMNS:
        value = fmt(row[figure], digits)
        ci = interval(row[f"{figure}_low"], row[f"{figure}_high"], digits)
        cell = value if value == DASH else f"{value} {ci}"
        judge = "age_judge_valid" if figure.startswith("age_") else "sex_judge_valid"
        if (
            marked
            and figure.startswith(("age_", "sex_"))
            and not as_bool(pd.Series([row[judge]]), judge).iloc[0]
        ):
            cell += f" {UNREAD}"
        cells.append(cell)
    return cells


def calibration_markdown(table: pd.DataFrame) -> str:
    rows = [
        [REAL_LABELS.get(r["group"], r["group"]), fmt(r["n"]), *_figure_cells(r)]
        for r in table[table["source"] == HELD_OUT].to_dict(orient="records")
    ]
    columns = ["reals (true age and sex as the request)", "n", *(h for _, h, _ in FIGURE_COLUMNS)]
    return markdown_table(pd.DataFrame(rows, columns=columns))


def _set_cell(row) -> str:
    label = row["role"] + ("" if row["in_distribution"] else f" {NOT_INTERPRETABLE}")
    if not row["headline"]:
        label += " (no seed in distribution: not a headline)"
    return label


def sets_markdown(table: pd.DataFrame, labels: Mapping[str, str]) -> list[str]:
    across = table[(table["source"] == GENERATED) & (table["seed"].astype(str) == ACROSS)]
    columns = ["set", "seeds", "n", *(h for _, h, _ in FIGURE_COLUMNS)]
    lines = []
    for condition in dict.fromkeys(across["condition"]):
        for group in GROUPS:
            part = across[(across["condition"] == condition) & (across["group"] == group)]
            if part.empty:
                continue
            rows = []
            for role in ROLES:
                for r in part[part["role"] == role].to_dict(orient="records"):
                    seeds = f"{int(r['n_seeds'])} ({r['seeds_used']})"
                    rows.append([_set_cell(r), seeds, fmt(r["n"]), *_figure_cells(r, True)])
            lines += [f"### {group}, {labels.get(condition, condition)}", ""]
            lines += [markdown_table(pd.DataFrame(rows, columns=columns)), ""]
    return lines


def instructions_markdown(
    table: pd.DataFrame, labels: Mapping[str, str], run_label: str, synthetic: bool
) -> str:
    """The judges' calibration on held-out reals, then per condition and group the instructed
    sets' across-seed figures beside the shuffled baseline's. ``labels``: display label per
    condition (default: its name)."""
    lines = header(TITLE, run_label, synthetic)
    lines += [
        "Age and sex are read from each image by judges trained on the real training slices; "
        "ventricle and brain areas by the morphometric judge. Each figure: value [95% CI].",
        "",
        "## The judges on held-out reals",
        "",
        "What following the request perfectly looks like through these judges (a slope below "
        "1 here is the age judge's own shrinkage towards the mean, not the generator's).",
        "",
        calibration_markdown(table),
        "",
        "## Generated sets: mean across seeds [95% CI across seeds]",
        "",
        "Outliers left out. The shuffled baseline is a class-only model's images against "
        "permuted requests: what ignoring the request looks like (r ≈ 0, slope ≈ 0, sex "
        "accuracy ≈ 0.5 when the requests are balanced).",
        "",
        f"{NOT_INTERPRETABLE} at least one seed's set is out of distribution for the judges: "
        "its figures are kept in the per-seed table but left out of the mean, unless no seed "
        "is in distribution (then every seed, and no headline).",
        f"{UNREAD} the judge does not read its attribute on the held-out reals (age: r's "
        "interval on both groups reaches 0 or below; sex: accuracy's reaches chance): its "
        "figures on generated images carry no information. The morphometric columns still do.",
        "",
    ]
    return "\n".join(lines + sets_markdown(table, labels))


def instructions_figure(images: pd.DataFrame, reals: pd.DataFrame, seed, title: str):
    """Requested vs predicted age of one seed's instructed sets (outliers left out), the reals'
    true vs predicted age beside it, and the instructed sets' 2x2 sex confusion counts."""
    kept = instructed_images(images, seed)
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 4.2), width_ratios=[1, 1, 0.75])
    ages = pd.concat([kept["requested_age"], kept["predicted_age"], reals["age"]])
    ages = pd.concat([ages, reals["predicted_age"]]).to_numpy(float)
    span = (np.nanmin(ages) - 2, np.nanmax(ages) + 2) if ages.size else (50, 95)
    caption = f"instructed sets, seed {seed}"
    if not as_bool(kept["cnn_interpretable"], "cnn_interpretable").all():
        caption += f" ({NOT_INTERPRETABLE} a set out of distribution)"
    panels = [
        (axes[0], kept, "requested_age", caption, "requested age"),
        (axes[1], reals, "age", "held-out reals", "true age"),
    ]
    for ax, frame, x, caption, xlabel in panels:
        for group in GROUPS:
            part = frame[frame["group"] == group]
            if part.empty:
                continue
            ax.scatter(
                part[x],
                part["predicted_age"],
                s=12,
                alpha=0.7,
                c=GROUP_COLOURS[group],
                label=f"{group} (n={len(part)})",
            )
        ax.plot(span, span, ls="--", c="grey", lw=1, label="identity")
        ax.set(xlim=span, ylim=span, xlabel=xlabel, ylabel="predicted age (judge)")
        ax.set_title(caption, fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    counts = sex_confusion(kept["requested_sex"], kept["prob_M"])
    axes[2].imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    for (i, j), n in np.ndenumerate(counts):
        colour = "white" if n > counts.max() / 2 else "black"
        axes[2].text(j, i, str(int(n)), ha="center", va="center", color=colour, fontsize=11)
    axes[2].set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=SEXES,
        yticklabels=SEXES,
        xlabel="predicted sex (judge)",
        ylabel="requested sex",
    )
    axes[2].set_title(f"instructed sets, seed {seed}: sex", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_instructions(
    *,
    table: pd.DataFrame,
    images: pd.DataFrame,
    reals: pd.DataFrame,
    labels: Mapping[str, str],
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_figures: Mapping,
) -> None:
    """The long table (csv), its Markdown and one figure per seed (``out_figures``: seed ->
    png path)."""
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8")
    io.write_text(out_md, instructions_markdown(table, labels, run_label, synthetic) + "\n")
    for seed, path in out_figures.items():
        title = figure_title("Instruction following: age and sex", run_label, synthetic)
        io.save_figure(path, instructions_figure(images, reals, seed, title))


def write_instructions_files(
    *,
    table: Path,
    images: Path,
    reals: Path,
    conditions: Mapping,
    seeds: list[int],
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_figures: list[Path],
) -> None:
    """Read evaluate's study tables and write the csv, the Markdown and a figure per seed
    (``out_figures`` in ``seeds`` order)."""
    if len(out_figures) != len(seeds):
        raise ValueError(f"{len(out_figures)} figure paths for {len(seeds)} seeds")
    study = io.read_tsv(table).astype({"seed": str})  # seeds and "all"
    labels = {c: f"{c}{conditions[c].label or ''}" for c in conditions}
    write_instructions(
        table=study,
        images=io.read_tsv(images),
        reals=io.read_tsv(reals),
        labels=labels,
        run_label=run_label,
        synthetic=synthetic,
        out_csv=out_csv,
        out_md=out_md,
        out_figures=dict(zip(seeds, out_figures, strict=True)),
    )
