"""brainmr.evaluate.judges.outliers: the robust low-likelihood rule flags clear failures (noise, a
blank image) and few real held-out slices (toy slices under the toy KDE); a flagged table split
by kind of set."""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainmr import SLICE_SIZE
from brainmr.evaluate.ceiling import ceiling_condition
from brainmr.evaluate.images import flatten, load_normalised, rescale_foreground
from brainmr.evaluate.judges.kde import load_kde
from brainmr.evaluate.judges.outliers import (
    REAL_CONDITION,
    best_loglik,
    flag_outliers,
    flag_references,
    flagged_sets,
    is_generated,
    outlier_threshold,
)


def test_outlier_rule_flags_noise_and_blank_but_few_reals(toy_split, kde_files):
    model = load_kde(kde_files[0])
    real = pd.DataFrame(model.score(flatten(load_normalised(toy_split["test"]["path"]))))
    real.columns = ["loglik_" + c for c in real.columns]
    threshold = outlier_threshold(best_loglik(real), mad_k=5.0)
    rng = np.random.default_rng(0)
    size = (SLICE_SIZE, SLICE_SIZE)
    odd = np.stack(
        [rng.uniform(0, 1, size), rng.normal(0.5, 0.2, size).clip(0, 1), np.zeros(size)]
    ).astype(np.float32)
    odd_scores = pd.DataFrame(model.score(flatten(np.stack([rescale_foreground(i) for i in odd]))))
    odd_scores.columns = ["loglik_" + c for c in odd_scores.columns]
    assert (best_loglik(odd_scores) < threshold).all()
    assert (best_loglik(real) < threshold).mean() <= 0.1
    # a tight rule (k = 0: the median) flags about half the reals
    median_rule = outlier_threshold(best_loglik(real), mad_k=1e-9)
    assert 0.3 < (best_loglik(real) < median_rule).mean() <= 0.5


def test_flagged_sets_split_generated_from_reals_and_ceiling_sets():
    """Two generated images fail, one of them a generated set's, the other a ceiling set's; one
    real fails too: only the generated set's failure is a generated outlier file."""
    ceiling = ceiling_condition("vae32")
    rows = [
        ("brain/AD/0.png", "brain", -10.0),
        ("brain/AD/1.png", "brain", -90.0),
        ("nobrain/CN/0.png", "nobrain", -11.0),
        ("ceiling/AD/0.png", ceiling, -95.0),
        ("ceiling/AD/1.png", ceiling, -10.5),
    ]
    table = pd.DataFrame(rows, columns=["path", "condition", "loglik_AD"]).assign(group="AD")
    real = pd.DataFrame(
        {
            "path": [f"real/{i}.png" for i in range(9)],
            "condition": REAL_CONDITION,
            "group": "CN",
            "loglik_AD": [-10.0, -11.0, -9.0, -10.5, -9.5, -10.2, -9.8, -10.0, -80.0],
        }
    )
    table = table.assign(loglik_CN=lambda t: t["loglik_AD"] - 1.0)
    references = flag_references(
        real.assign(loglik_CN=lambda t: t["loglik_AD"] - 1.0),
        table[table["condition"] == ceiling],
        mad_k=5.0,
    )
    scores = flag_outliers(table[table["condition"] != ceiling], references)
    assert is_generated(scores["condition"]).tolist() == [True] * 3 + [False] * 11
    split = flagged_sets(scores)
    assert split.generated["path"].tolist() == [
        "brain/AD/0.png",
        "brain/AD/1.png",
        "nobrain/CN/0.png",
    ]
    assert len(split.real) == 9 and (split.real["condition"] == REAL_CONDITION).all()
    assert split.threshold == scores["threshold"].iloc[0]
    assert split.outlier_files == {"brain/AD/1.png"}
    assert scores.loc[scores["outlier"], "path"].tolist() == [
        "brain/AD/1.png",
        "ceiling/AD/0.png",
        "real/8.png",
    ]
