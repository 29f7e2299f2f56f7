"""Shared formatting of the report: numbers, intervals, tables, the Markdown page header and the
figures' title."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DASH = "—"
NOT_INTERPRETABLE = "†"


def interval(low, high, digits: int = 2) -> str:
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return DASH
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def p_value(value) -> str:
    """A p value as every table prints it: 3 significant digits, "<0.001" below, — for none."""
    if value is None or not np.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3g}"


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


def figure_title(text: str, run_label: str, synthetic: bool) -> str:
    """A figure's title: the text, the run label below it, and the demo-data mark in front."""
    prefix = "SYNTHETIC DEMO DATA - " if synthetic else ""
    return f"{prefix}{text}\n{run_label}"
