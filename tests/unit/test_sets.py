"""brainmr.evaluate.sets: the out-of-distribution guard and size-matched fidelity, on feature
sets whose answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from brainmr.config import stage_config
from brainmr.evaluate import JudgeConfig
from brainmr.evaluate.sets import matched_fidelity, out_of_distribution, set_metrics

D = 16


def scores_frame(sets: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (condition, group), n in sets.items():
        for i in range(n):
            rows.append(
                {
                    "condition": condition,
                    "group": group,
                    "prob_AD": 0.8 if i % 4 else 0.2,
                    "nn_corr": 0.6,
                    "outlier": False,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def metrics():
    rng = np.random.default_rng(0)

    def draw(n, shift=0.0):
        return rng.normal(size=(n, D)) + shift

    sets = {
        ("same", "AD"): 100,  # drawn like the reals
        ("same", "CN"): 100,
        ("far", "AD"): 100,  # shifted far away: out of distribution
        ("far", "CN"): 100,
        ("real", "AD"): 30,
        ("real", "CN"): 30,
    }
    features = {
        "same/AD": draw(100),
        "same/CN": draw(100, 0.5),
        "far/AD": draw(100, 8.0),
        "far/CN": draw(100, 8.5),
        "real/AD": draw(30),
        "real/CN": draw(30, 0.5),
    }
    train = {"AD": draw(60), "CN": draw(60, 0.5)}
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=10, knn_k=5)
    return set_metrics(scores_frame(sets), features, train, cfg).set_index(["condition", "group"])


def test_far_sets_are_flagged_and_same_distribution_sets_are_not(metrics):
    assert metrics.loc[("same", "AD"), "cnn_interpretable"]
    assert metrics.loc[("same", "CN"), "cnn_interpretable"]
    assert not metrics.loc[("far", "AD"), "cnn_interpretable"]
    assert "precision" in metrics.loc[("far", "AD"), "ood_reason"]
    assert metrics.loc[("real", "AD"), "cnn_interpretable"]


def test_fidelity_is_size_matched_to_the_reference(metrics):
    assert (metrics["n_matched"] == 30).all()
    same, far = metrics.loc[("same", "AD")], metrics.loc[("far", "AD")]
    assert far["frechet_distance"] > 10 * same["frechet_distance"]
    assert far["kid"] > same["kid"]
    assert far["precision"] == 0 and far["coverage"] == 0
    assert 0 < same["density"] and same["coverage"] > 0.5


def test_mean_prob_ad_has_an_interval(metrics):
    row = metrics.loc[("same", "AD")]
    assert row["mean_prob_AD"] == pytest.approx(0.65)  # 3 of 4 at 0.8, 1 of 4 at 0.2
    assert row["prob_AD_low"] < 0.65 < row["prob_AD_high"]


def test_out_of_distribution_rule():
    reference = {"precision": 0.8, "coverage": 0.6}
    assert out_of_distribution({"precision": 0.5, "coverage": 0.4}, reference, 0.5) == (False, "")
    flagged, why = out_of_distribution({"precision": 0.3, "coverage": 0.4}, reference, 0.5)
    assert flagged and why.startswith("precision 0.30")
    assert out_of_distribution({"precision": np.nan, "coverage": 1.0}, reference, 0.5)[0]
    unmeasurable = {"precision": np.nan, "coverage": np.nan}
    flagged, why = out_of_distribution({"precision": 1.0, "coverage": 1.0}, unmeasurable, 0.5)
    assert flagged and "fewer than 2 held-out reals" in why


def test_default_draws_make_coverage_a_stable_estimate():
    """With a reference of 4 reals (the demo's held-out AD), coverage at matched size is a mean
    over random 4-image subsets of the generated set: the schema's number of draws must make it
    independent of which subsets were drawn, where 20 draws were not."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(4, 8))
    # a fifth of the generated images near the reals, the rest far: an answer near 0.4
    candidate = np.concatenate([rng.normal(size=(20, 8)), rng.normal(4.0, 1.0, size=(80, 8))])
    default = stage_config(JudgeConfig, "evaluate")

    def spread(draws: int) -> float:
        runs = [
            matched_fidelity(reference, candidate, replace(default, matched_draws=draws, seed=s))
            for s in range(5)
        ]
        values = [run["coverage"] for run in runs]
        assert all(0.2 < v < 0.7 for v in values), values
        return max(values) - min(values)

    assert spread(20) > 0.1  # 0.28 measured
    assert spread(default.matched_draws) < 0.04  # 0.02 measured
