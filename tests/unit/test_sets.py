"""brainmr.evaluate.judges.sets: the out-of-distribution guard and size-matched fidelity, on feature
sets whose answer is known."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainmr.config import stage_config
from brainmr.evaluate.config import JudgeConfig
from brainmr.evaluate.judges.sets import (
    GuardSet,
    guard_verdict,
    matched_fidelity,
    out_of_distribution,
    pooled_guard,
    set_metrics,
)

D = 16


def unseen_of(groups: list[str]) -> pd.DataFrame:
    """The CNN's validation reals: one row per feature row, with its class and subject."""
    return pd.DataFrame({"subject": [f"val{i}" for i in range(len(groups))], "group": groups})


def scores_frame(sets: dict[tuple[str, str], int], prob_ad: dict | None = None) -> pd.DataFrame:
    rows = []
    for (condition, group), n in sets.items():
        for i in range(n):
            default = 0.8 if i % 4 else 0.2
            rows.append(
                {
                    "condition": condition,
                    "group": group,
                    "prob_AD": (prob_ad or {}).get((condition, group), default),
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
    unseen = np.concatenate([draw(10), draw(10, 0.5)])
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=10, knn_k=5)
    groups = unseen_of(["AD"] * 10 + ["CN"] * 10)
    table = set_metrics(scores_frame(sets), features, train, groups, unseen, cfg)
    return table.set_index(["condition", "group"])


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
    # Student's t interval over the set's 100 images (75 at 0.8, 25 at 0.2), written out
    sd = math.sqrt((75 * 0.15**2 + 25 * 0.45**2) / 99)
    half = stats.t.ppf(0.975, 99) * sd / math.sqrt(100)  # 0.052
    assert (row["prob_AD_low"], row["prob_AD_high"]) == pytest.approx((0.65 - half, 0.65 + half))


def test_out_of_distribution_rule():
    reference = {"precision": 0.8, "coverage": 0.6}
    rule = out_of_distribution
    assert rule({"precision": 0.5, "coverage": 0.4}, reference, 0.5, "reals") == (False, "")
    flagged, why = rule({"precision": 0.3, "coverage": 0.4}, reference, 0.5, "reals")
    assert flagged and why.startswith("precision 0.30") and "(reals)" in why
    assert rule({"precision": np.nan, "coverage": 1.0}, reference, 0.5, "reals")[0]
    unmeasurable = {"precision": np.nan, "coverage": np.nan}
    flagged, why = rule({"precision": 1.0, "coverage": 1.0}, unmeasurable, 0.5, "reals")
    assert flagged and "too few reals" in why


@pytest.fixture(scope="module")
def swapped():
    """Features of a CNN trained to separate the classes (16-D, classes 2 apart per axis). A
    generated "AD" set drawn from real CN (the paper's finding: AD images that look CN), a set of
    junk far from every real, a set of wide unstructured noise, and a real-like
    AD set. The demo's sizes: 4 AD + 5 CN held-out reals, 2 + 2 validation reals."""
    rng = np.random.default_rng(3)

    def draw(n, shift):
        return rng.normal(size=(n, D)) + shift

    sets = {
        ("looks_cn", "AD"): 100,
        ("junk", "AD"): 100,
        ("noise", "CN"): 100,
        ("fine", "AD"): 100,
        ("real", "AD"): 4,
        ("real", "CN"): 5,
    }
    features = {
        "looks_cn/AD": draw(100, 2.0),
        "junk/AD": draw(100, 8.0),
        "noise/CN": rng.normal(scale=6.0, size=(100, D)) + 1.0,  # unstructured, wide
        "fine/AD": draw(100, 0.0),
        "real/AD": draw(4, 0.0),
        "real/CN": draw(5, 2.0),
    }
    train = {"AD": draw(30, 0.0), "CN": draw(40, 2.0)}
    unseen = np.concatenate([draw(2, 0.0), draw(2, 2.0)])
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=200)
    prob = {("looks_cn", "AD"): 0.1, ("fine", "AD"): 0.9}
    groups = unseen_of(["AD", "AD", "CN", "CN"])
    table = set_metrics(scores_frame(sets, prob), features, train, groups, unseen, cfg)
    return table.set_index(["condition", "group"])


def test_the_guard_shows_counts_of_an_ad_set_that_looks_cn(swapped):
    row = swapped.loc[("looks_cn", "AD")]
    assert row["cnn_interpretable"]  # real brains, of the other class: in distribution
    assert row["mean_prob_AD"] == pytest.approx(0.1)  # and its counts, now shown, say CN
    assert row["classwise_ood"]  # the class-wise rule withheld them
    assert swapped.loc[("fine", "AD"), "cnn_interpretable"]
    assert swapped.loc[("real", "CN"), "cnn_interpretable"]


def test_the_guard_flags_junk_and_noise(swapped):
    for key in (("junk", "AD"), ("noise", "CN")):
        assert not swapped.loc[key, "cnn_interpretable"], key
        assert "unseen reals of the class asked for" in swapped.loc[key, "ood_reason"]
    assert swapped.loc[("junk", "AD"), "guard_precision"] == 0


def test_the_guard_reference_is_both_classes_and_the_cnn_validation_reals(swapped):
    assert (swapped["guard_n_unseen"] == 4 + 5 + 4).all()
    # candidates: half of each class's unseen reals (AD 4 + 2 -> 3, CN 5 + 2 -> 3)
    assert (swapped.loc[[("fine", "AD"), ("junk", "AD")], "guard_n_matched"] == 3).all()
    level = swapped.loc[("fine", "AD")]
    assert 0.5 < level["guard_level_coverage"] <= 1 and 0.5 < level["guard_level_precision"] <= 1


def test_outliers_are_left_out_of_the_guard():
    """A set whose only far images are its outliers is judged on the rest."""
    rng = np.random.default_rng(4)
    sets = {("gen", "AD"): 40, ("real", "AD"): 10, ("real", "CN"): 10}
    scores = scores_frame(sets)
    outlier = np.zeros(len(scores), bool)
    outlier[:20] = True  # the first 20 generated images
    scores["outlier"] = outlier
    gen = np.concatenate([rng.normal(size=(20, D)) + 9.0, rng.normal(size=(20, D))])
    features = {
        "gen/AD": gen,
        "real/AD": rng.normal(size=(10, D)),
        "real/CN": rng.normal(size=(10, D)),
    }
    train = {"AD": rng.normal(size=(20, D)), "CN": rng.normal(size=(20, D))}
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=50)
    val = unseen_of(["AD", "AD", "CN", "CN"])
    table = set_metrics(scores, features, train, val, rng.normal(size=(4, D)), cfg)
    assert bool(table.set_index(["condition", "group"]).loc[("gen", "AD"), "cnn_interpretable"])
    scores["outlier"] = False
    table = set_metrics(scores, features, train, val, rng.normal(size=(4, D)), cfg)
    assert table.set_index(["condition", "group"]).loc[("gen", "AD"), "guard_precision"] < 0.8


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


def _guard_cases(n_ad: int, n_cn: int, n_images: int, seed: int):
    """Unseen reals of both classes (16-D, classes 2 apart) and sets whose answer is known."""
    rng = np.random.default_rng(seed)
    mean = {"AD": np.r_[2.0, np.zeros(D - 1)], "CN": np.zeros(D)}

    def draw(group: str, n: int) -> np.ndarray:
        return rng.normal(size=(n, D)) + mean[group]

    unseen = np.concatenate([draw("AD", n_ad), draw("CN", n_cn)])
    groups = np.array(["AD"] * n_ad + ["CN"] * n_cn)
    sets = {
        "faithful AD": GuardSet(draw("AD", n_images), "AD"),
        "faithful CN": GuardSet(draw("CN", n_images), "CN"),
        "AD that looks CN": GuardSet(draw("CN", n_images), "AD"),
        "blurred AD": GuardSet(mean["AD"] + 0.3 * (draw("AD", n_images) - mean["AD"]), "AD"),
        "one image repeated": GuardSet(np.repeat(draw("AD", 1), n_images, axis=0), "AD"),
        "junk": GuardSet(draw("AD", n_images) + 6.0, "AD"),
    }
    return unseen, groups, sets


@pytest.mark.parametrize("n_ad,n_cn", [(6, 7), (108, 144)])  # the demo's and ADNI's unseen reals
def test_the_guard_passes_faithful_sets_and_flags_broken_ones_at_both_scales(n_ad, n_cn):
    """At ADNI sizes the former pooled level (both classes in the candidate half) flagged a
    faithful AD set (coverage 0.43 < 0.5 x 0.97); the level of the class asked for does not."""
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=100)
    passed = {"faithful AD", "faithful CN", "AD that looks CN"}
    for seed in range(3):
        unseen, groups, sets = _guard_cases(n_ad, n_cn, 100, seed)
        figures = pooled_guard(unseen, groups, np.arange(len(unseen)), sets, cfg)
        for name, values in figures.items():
            flagged = guard_verdict(values, cfg.ood_fraction)[0]
            assert flagged == (name not in passed), (n_ad, seed, name, values)
        # a faithful set is level with its class (at the demo's 3 candidates a draw's few reals
        # make the level itself noisy; at ADNI's 54 it is tight)
        for key in ("precision", "coverage", "recall") if n_ad > 100 else ():
            faithful = figures["faithful AD"]
            assert faithful[key] == pytest.approx(faithful[f"level_{key}"], abs=0.12)


def test_a_ceiling_set_is_judged_without_its_own_source_subjects():
    """Ceiling images that are exact copies of the held-out reals: judged against a reference
    holding their own sources, those find themselves (precision and coverage above the level);
    judged without them, they are exactly the level's candidates, no better."""
    rng = np.random.default_rng(7)
    unseen = rng.normal(size=(40, D))
    groups = np.array(["AD"] * 20 + ["CN"] * 20)
    subjects = np.array([f"S{i}" for i in range(40)])
    copies = {"ceiling": GuardSet(unseen[:20], "AD", subjects[:20])}
    blind = {"ceiling": GuardSet(unseen[:20], "AD", None)}
    cfg = stage_config(JudgeConfig, "evaluate", matched_draws=300)
    fair = pooled_guard(unseen, groups, subjects, copies, cfg)["ceiling"]
    self_matched = pooled_guard(unseen, groups, subjects, blind, cfg)["ceiling"]
    for key in ("precision", "coverage", "recall"):  # the very candidates the level draws
        assert fair[key] == pytest.approx(fair[f"level_{key}"])
    for key in ("precision", "coverage"):  # half the picks find themselves in the reference
        assert self_matched[key] > self_matched[f"level_{key}"] + 0.03
