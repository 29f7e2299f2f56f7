"""The privacy table (results/<study>/privacy.csv and .md) and its figures, formatted from
brainmr.evaluate.studies.privacy's tables; nothing is computed here."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainmr import io  # noqa: E402
from brainmr.evaluate.studies.privacy import FPRS, fpr_name  # noqa: E402
from brainmr.report.format import DASH, figure_title, fmt, header, interval  # noqa: E402


def _mean_cell(r, column: str) -> str:
    mean = getattr(r, f"{column}_mean")
    if not np.isfinite(mean):
        return DASH
    return f"{fmt(mean)} {interval(getattr(r, f'{column}_low'), getattr(r, f'{column}_high'))}"


def _tpr_cell(r, fpr: float) -> str:
    needed = int(np.ceil(1 / fpr - 1e-9))
    if r.n_nonmembers < needed:
        return f"not estimable ({int(r.n_nonmembers)} non-members; needs {needed})"
    return _mean_cell(r, fpr_name(fpr))


def privacy_markdown(
    summary: pd.DataFrame,
    subjects: pd.DataFrame,
    steps: pd.DataFrame,
    threshold: dict,
    run_label: str,
    synthetic: bool,
) -> str:
    lines = header("Can the generated images be shared?", run_label, synthetic)
    lines += [
        "| condition | model | attack AUC across seeds | per seed | base model (floor) | "
        + " | ".join(f"TPR at {round(f * 100)}% FPR" for f in FPRS)
        + " | members / non-members | training subjects copied | copies per seed |",
        "|---|---|---|---|---|" + "---|" * len(FPRS) + "---|---|---|",
    ]
    for r in summary.itertuples():
        base = f"{fmt(r.base_auc)} {interval(r.base_auc_low, r.base_auc_high)}"
        lines.append(
            f"| {r.condition} | {r.model} | {_mean_cell(r, 'auc')} | {r.auc_per_seed} | {base} | "
            + " | ".join(_tpr_cell(r, f) for f in FPRS)
            + f" | {int(r.n_members)} / {int(r.n_nonmembers)} | {_mean_cell(r, 'share_copied')} "
            f"| {r.copies_per_seed} |"
        )
    n, needed = int(threshold["n_reals"]), int(threshold["reals_needed"])
    lines += [
        "",
        "Attack: a slice is called a member (trained on) when the model's denoising loss on it, "
        "with its own prompt and the same timesteps and noise for every slice, is low. AUC 0.5: "
        "the model does not tell its training subjects from held-out ones; 1: it tells them all. "
        "Across seeds: the mean with its Student-t 95% interval (the seed is the unit); the base "
        "model, which saw none of the slices, with its bootstrap interval over subjects, is the "
        "floor. A true-positive rate at a false-positive rate f needs at least 1/f non-members.",
        f"Copies: generated images (every set of a seed) whose nearest training slice "
        f"correlates above the memorization threshold r = {fmt(threshold['threshold'], 3)} "
        f"(bootstrap 95% {interval(threshold['threshold_low'], threshold['threshold_high'], 3)}"
        f"), the {threshold['quantile']} quantile of {n} held-out reals' own nearest-training "
        "correlations."
        + (
            f" With fewer than {needed} held-out reals that quantile is their largest value, in "
            f"effect: {n} is few, and the threshold's interval is wide."
            if n < needed
            else ""
        )
        + " Training subjects copied: the share copied at least once, mean across seeds with "
        "its t interval.",
        "",
        "### Most copied training subjects (every condition, every seed)",
        "",
    ]
    if subjects.empty:
        lines.append("No training subject was copied above the threshold.")
    else:
        lines += ["| subject | class | copies | per seed | highest r |", "|---|---|---|---|---|"]
        for r in subjects.itertuples():
            lines.append(
                f"| {r.subject} | {r.group} | {int(r.copies)} | {r.copies_per_seed} | "
                f"{fmt(r.max_corr, 3)} |"
            )
    lines += [
        "",
        "### Memorization against training steps (validation images, fixed seeds)",
        "",
        "| condition | step | images | median r | largest r | copies | copy share per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in steps.itertuples():
        lines.append(
            f"| {r.condition} | {int(r.step)} | {int(r.n_images)} | {fmt(r.nn_corr_median, 3)} "
            f"| {fmt(r.nn_corr_max, 3)} | {int(r.copies)} | {_mean_cell(r, 'copy_share')} |"
        )
    return "\n".join(lines) + "\n"


def attack_figure(attacks: pd.DataFrame, run_label: str, synthetic: bool):
    """Attack AUC per model: each seed's with its bootstrap interval, and the base's."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * max(len(attacks), 3) + 1.2))
    labels = [f"{r.condition} {r.model}: {r.stage}" for r in attacks.itertuples()]
    y = np.arange(len(attacks))[::-1]
    for yi, r in zip(y, attacks.itertuples(), strict=True):
        colour = "grey" if r.stage == "base" else "C0"
        ax.errorbar(
            r.auc,
            yi,
            xerr=[[r.auc - r.auc_low], [r.auc_high - r.auc]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    ax.axvline(0.5, color="black", linestyle=":", linewidth=1)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("membership-inference AUC (bootstrap 95% over subjects); 0.5 = no leak")
    ax.set_title(figure_title("Who was trained on? Loss-based attack", run_label, synthetic))
    fig.tight_layout()
    return fig


def steps_figure(
    steps: pd.DataFrame, condition: str, threshold: float, run_label: str, synthetic: bool
):
    """One condition: nearest-training correlation (median, largest) of the validation images
    against the training step, beside the memorization threshold, and the copy share per seed
    (mean, t interval)."""
    part = steps[steps["condition"] == condition].sort_values("step")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(part["step"], part["nn_corr_median"], "o-", label="median")
    left.plot(part["step"], part["nn_corr_max"], "s--", label="largest")
    left.axhline(threshold, color="red", linestyle=":", label="memorization threshold")
    left.set_xlabel("training step")
    left.set_ylabel("nearest training slice r")
    left.legend()
    low = (part["copy_share_mean"] - part["copy_share_low"]).fillna(0)
    high = (part["copy_share_high"] - part["copy_share_mean"]).fillna(0)
    right.errorbar(part["step"], part["copy_share_mean"], yerr=[low, high], fmt="o-", capsize=3)
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel("training step")
    right.set_ylabel("share of validation images copied")
    fig.suptitle(figure_title(f"Memorization against steps: {condition}", run_label, synthetic))
    fig.tight_layout()
    return fig


def write_privacy(
    *,
    summary: Path,
    attacks: Path,
    subjects: Path,
    steps: Path,
    threshold: Path,
    conditions: list[str],
    run_label: str,
    synthetic: bool,
    out_csv: Path,
    out_md: Path,
    out_attack: Path,
    out_steps: list[Path],
) -> None:
    table, step_table, limits = io.read_tsv(summary), io.read_tsv(steps), io.read_json(threshold)
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")  # one row per attacked model
    text = privacy_markdown(table, io.read_tsv(subjects), step_table, limits, run_label, synthetic)
    io.write_text(out_md, text)
    io.save_figure(out_attack, attack_figure(io.read_tsv(attacks), run_label, synthetic))
    for condition, out in zip(conditions, out_steps, strict=True):
        figure = steps_figure(step_table, condition, limits["threshold"], run_label, synthetic)
        io.save_figure(out, figure)
