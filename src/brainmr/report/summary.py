"""Table 1 across replicate seeds (table1_summary.csv/.md): every cell's mean, sd and interval
across seeds, the counts pooled over seeds, and the tests between conditions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from brainmr.evaluate.stats.tests import NO_SPREAD
from brainmr.report.format import (
    DASH,
    NOT_INTERPRETABLE,
    fmt,
    header,
    interval,
    markdown_table,
    p_value,
)
from brainmr.report.labels import ordered, row_label, set_label
from brainmr.report.table1 import VENTRICLES, sensitivity_line, verdict_line

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
                few = FEW_MARK if r.get(f"{key}_few_per_seed") is True else ""
                # across seeds for generated sets; real and ceiling counts: Wilson over images
                span = seed_interval if r["kind"] == "generated" else _interval3
                row[name] = (
                    f"{r[key + '_seed_mean']:.3f} "
                    f"{span(r[key + '_seed_low'], r[key + '_seed_high'])}{few}{mark}"
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


FEW_MARK = " ‡"
FEW_NOTE = (
    "‡ fewer than 2 images per seed on average: 3 seeds cannot estimate the spread of counts this"
    " small and the t interval undercovers (bench/calibration.py); read the pooled figure."
)


def _text(value) -> bool:
    """A non-empty text cell (an empty one reads back from TSV as NaN)."""
    return isinstance(value, str) and bool(value)


def _interval3(low, high) -> str:
    return interval(low, high, 3)


def seed_interval(low, high) -> str:
    """A t interval across seeds; one of zero width is no spread between the seeds, not
    certainty, and says so."""
    if np.isfinite(low) and np.isfinite(high) and low == high:
        return f"({NO_SPREAD})"
    return interval(low, high, 3)


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
                "paired t p": r["note"] if _text(r.get("note")) else p_value(r["p_value"]),
                "detectable (80% power)": (
                    f"±{fmt(r['detectable'], 3)}" if np.isfinite(r["detectable"]) else DASH
                ),
                "every seed same sign": r["sign_per_seed"],
                "pooled A: k/n": f"{r['k_a']}/{r['n_a']}",
                "pooled B: k/n": f"{r['k_b']}/{r['n_b']}",
                "pooled Fisher p (images independent)": p_value(r["pooled_p_value"]),
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
        markdown_table(rows := summary_markdown_rows(summary, conditions)),
        "",
        *(
            [FEW_NOTE, ""]
            if rows.astype(str).apply(lambda c: c.str.contains("‡")).any().any()
            else []
        ),
        "## Between conditions",
        "",
        "B − A: the mean of the per-seed differences with its t 95% interval, tested by a paired "
        "t-test across seeds (the seed pairs the two conditions through its CNN; with 3 seeds "
        "a random-effects model's variance is barely estimable, the paired t needs none); "
        "'detectable': the smallest difference these seeds detect with 80% power at the observed "
        "spread. Fisher's exact test on the counts pooled over seeds treats the images as "
        "independent and is secondary. Where every seed moves by the same amount (both "
        "conditions at 0% in every seed, say), there is no spread to test against: no p, no "
        "detectable difference, and the row says so.",
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
            f"{k} {fmt(v['mean'], 3)} ± {fmt(v['sd'], 3)} {seed_interval(v['low'], v['high'])}"
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
