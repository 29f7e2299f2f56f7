"""brainmr.report.classifier: the CNN's ROC curve and reliability diagram, drawn from a hand-made
held-out result (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from brainmr.evaluate.judges.classifier import HeldOut
from brainmr.evaluate.stats.binary import reliability_table
from brainmr.report.classifier import classifier_figures, plot_reliability, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def held_out(labels, prob) -> HeldOut:
    labels, prob = np.asarray(labels), np.asarray(prob, float)
    return HeldOut(labels, prob, 0.75, reliability_table(labels, prob), 0.2)


def test_classifier_figures_writes_both_pngs(tmp_path):
    result = held_out([0, 0, 1, 1, 0, 1], [0.1, 0.6, 0.4, 0.9, 0.2, 0.8])
    roc, reliability = tmp_path / "out" / "roc.png", tmp_path / "out" / "reliability.png"
    classifier_figures(result, out_roc=roc, out_reliability=reliability)
    for path in (roc, reliability):
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in roc.parent.iterdir()) == ["reliability.png", "roc.png"]


def test_roc_curve_and_reliability_points_are_the_data():
    labels, prob = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    fig = plot_roc(labels, prob, 0.75, "t")
    curve = fig.axes[0].lines[0]  # the CNN's ROC: (0, 0) .. (1, 1) through each threshold
    assert curve.get_xdata().tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert curve.get_ydata().tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert "AUC = 0.75" in curve.get_label()
    table = reliability_table(labels, prob, n_bins=2)  # [0, 0.5): 0.1, 0.4; [0.5, 1]: 0.6, 0.9
    fig = plot_reliability(table, 0.2, "t")
    points = fig.axes[0].lines[1]
    assert points.get_xdata().tolist() == pytest.approx([0.25, 0.75])
    assert points.get_ydata().tolist() == [0.5, 0.5]
    assert [t.get_text() for t in fig.axes[0].texts] == ["n=2", "n=2"]
    assert "Brier 0.200" in points.get_label()


def test_roc_with_one_class_says_so():
    fig = plot_roc(np.ones(3, int), np.array([0.2, 0.7, 0.9]), None, "t")
    assert [t.get_text() for t in fig.axes[0].texts] == ["ROC undefined: one class in test"]
