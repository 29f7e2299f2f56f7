"""The AD/CN CNN's figures on its held-out test split: the ROC curve and the reliability diagram,
drawn from what brainmr.evaluate.judges.classifier.train_classifier returns."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import RocCurveDisplay  # noqa: E402

from brainmr import io  # noqa: E402
from brainmr.evaluate.judges.classifier import HeldOut  # noqa: E402


def plot_roc(labels: np.ndarray, prob_ad: np.ndarray, auc: float | None, title: str):
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if auc is not None:
        RocCurveDisplay.from_predictions(labels, prob_ad, ax=ax, name="CNN", curve_kwargs={"lw": 2})
    else:
        ax.text(0.5, 0.5, "ROC undefined: one class in test", ha="center")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlabel="false positive rate (CN called AD)", ylabel="true positive rate (AD)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_reliability(table: pd.DataFrame, brier: float, title: str):
    """Observed fraction of AD against mean predicted P(AD) per bin, with each bin's n."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    kept = table[table["n"] > 0]
    ax.plot(kept["mean_prob"], kept["fraction_AD"], "o-", label=f"CNN (Brier {brier:.3f})")
    for row in kept.itertuples():
        ax.annotate(f"n={row.n}", (row.mean_prob, row.fraction_AD), fontsize=7)
    ax.set(xlabel="mean predicted P(AD)", ylabel="observed fraction AD", xlim=(0, 1), ylim=(0, 1))
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def classifier_figures(held_out: HeldOut, *, out_roc: Path, out_reliability: Path) -> None:
    """Write the ROC curve and the reliability diagram of the CNN on its held-out test split."""
    title = f"AD/CN CNN, held-out test (n={len(held_out.labels)})"
    io.save_figure(out_roc, plot_roc(held_out.labels, held_out.prob_ad, held_out.roc_auc, title))
    io.save_figure(out_reliability, plot_reliability(held_out.reliability, held_out.brier, title))
