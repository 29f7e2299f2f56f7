"""brainmr.report.format (numbers, intervals, Markdown tables, the page header) and
brainmr.report.labels (the rows' labels and order), on values with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from toy_run import CONDITIONS

from brainmr.evaluate.judges.outliers import REAL_CONDITION
from brainmr.evaluate.table1.replicates import OUTLIER_SET
from brainmr.report.format import DASH, figure_title, fmt, header, interval, markdown_table
from brainmr.report.labels import ordered, row_label, set_label


def test_fmt_keeps_integers_and_strings_and_dashes_what_is_missing():
    assert fmt(3) == "3" and fmt(np.int64(12)) == "12"
    assert fmt(0.12545) == "0.13" and fmt(-423.954, 3) == "-423.954" and fmt(2.0, 0) == "2"
    assert fmt("6 †") == "6 †"
    assert fmt(None) == fmt(math.nan) == fmt(np.float64("nan")) == DASH == "—"


def test_interval_rounds_both_ends_and_dashes_an_open_one():
    assert interval(0.1, 0.25) == "[0.10, 0.25]"
    assert interval(0.75751, 1.0, 3) == "[0.758, 1.000]"
    assert interval(-8.25, 60.6, 0) == "[-8, 61]"
    assert interval(None, 1.0) == interval(0.1, math.nan) == interval(-math.inf, 1) == DASH


def test_markdown_table_formats_every_cell():
    table = pd.DataFrame({"set": ["AD", "CN"], "n": [6, 5], "P": [0.7313, math.nan]})
    assert markdown_table(table, digits=3) == (
        "| set | n | P |\n|---|---|---|\n| AD | 6 | 0.731 |\n| CN | 5 | — |"
    )


def test_header_carries_the_synthetic_banner_only_for_demo_data():
    assert header("Table 1", "adni run", synthetic=False) == ["# Table 1", "", "Run: adni run", ""]
    demo = header("Table 1", "toy run", synthetic=True)
    assert demo[:4] == ["# Table 1", "", "Run: toy run", ""] and len(demo) == 6
    assert demo[4].startswith("**SYNTHETIC DEMO DATA: a synthetic cohort") and demo[5] == ""


def test_row_and_set_labels():
    assert row_label("AD", "brain", CONDITIONS) == "AD"
    assert row_label("CN", "nobrain", CONDITIONS) == "CN (no brain)"
    assert row_label("AD", "third", CONDITIONS) == "AD (third)"  # no label: its name
    assert set_label("third", "CN", CONDITIONS) == "CN (third)"
    assert set_label(OUTLIER_SET, "", CONDITIONS) == "outlier"
    assert set_label(REAL_CONDITION, "CN", CONDITIONS) == "held-out real CN"
    assert (
        set_label("ceiling_vae32", "AD", CONDITIONS)
        == "held-out real AD through the generator (vae32)"
    )


def test_ordered_puts_rows_in_table1_order():
    keys = [
        (REAL_CONDITION, "CN"),
        ("third", "AD"),
        ("ceiling_vae32", "CN"),
        (OUTLIER_SET, math.nan),  # the outlier row has no class
        ("nobrain", "CN"),
        (REAL_CONDITION, "AD"),
        ("brain", "CN"),
        ("ceiling_vae32", "AD"),
        ("brain", "AD"),
        ("unknown", "AD"),  # not in the config: last
    ]
    table = pd.DataFrame(keys, columns=["condition", "group"]).assign(i=range(len(keys)))
    assert ordered(table, CONDITIONS)["i"].tolist() == [8, 6, 4, 1, 3, 7, 2, 5, 0, 9]


def test_figure_title_marks_demo_data_and_names_the_run():
    assert figure_title("Figure 1", "toy run", True) == "SYNTHETIC DEMO DATA - Figure 1\ntoy run"
    assert figure_title("KDE", "ADNI run", False) == "KDE\nADNI run"


def test_one_p_value_format_for_every_table():
    from brainmr.report.format import p_value

    assert p_value(0.0123456) == "0.0123" and p_value(0.21) == "0.21"
    assert p_value(0.0004) == "<0.001" and p_value(float("nan")) == "—" and p_value(None) == "—"
