"""The remedies table: fractions judged AD as seed means with t intervals, effects against the
baseline by a paired t test over seeds (pooled Wilson/Fisher figures as secondary columns,
checked against scipy), and the out-of-distribution flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from brainmr.evaluate.stats.intervals import mean_interval, wilson_interval
from brainmr.evaluate.studies.remedies import ad_counts, compare_remedies
from brainmr.report.remedies import remedies_forest, remedies_frame, remedies_markdown


def by_seed_table(sets: dict, interpretable: dict | None = None) -> pd.DataFrame:
    """sets: (condition, group) -> per-seed (predicted_AD, misclassified, n)."""
    rows = []
    for (condition, group), per_seed in sets.items():
        for seed, (pred, mis, n) in enumerate(per_seed):
            ok = (interpretable or {}).get((condition, group), True)
            rows.append(
                {"seed": seed, "condition": condition, "group": group, "n": n}
                | {"predicted_AD": pred, "misclassified": mis, "cnn_interpretable": ok}
            )
    rows.append({"seed": 0, "condition": "outlier", "group": "", "n": 3})  # ignored
    return pd.DataFrame(rows)


SETS = {
    # baseline: AD images look CN (the paper's finding)
    ("brain", "AD"): [(3, 95, 100), (5, 90, 100), (2, 97, 100)],
    ("brain", "CN"): [(2, 1, 100), (1, 0, 100), (3, 2, 100)],
    # a remedy that works: AD images become AD, CN images stay CN
    ("fix", "AD"): [(60, 30, 100), (70, 20, 100), (55, 35, 100)],
    ("fix", "CN"): [(4, 2, 100), (2, 3, 100), (3, 1, 100)],
    # a remedy identical to the baseline
    ("same", "AD"): [(3, 95, 100), (5, 90, 100), (2, 97, 100)],
    ("same", "CN"): [(2, 1, 100), (1, 0, 100), (3, 2, 100)],
}


def test_likelihood_AD_counts_read_misclassifications_by_class():
    counts = ad_counts(by_seed_table(SETS))
    row = counts[(counts.condition == "brain") & (counts.group == "AD") & (counts.seed == 0)]
    assert int(row.likelihood_AD.iloc[0]) == 5  # 95 of 100 AD images misclassified as CN
    row = counts[(counts.condition == "brain") & (counts.group == "CN") & (counts.seed == 0)]
    assert int(row.likelihood_AD.iloc[0]) == 1  # CN images misclassified are AD verdicts
    assert "outlier" not in set(counts.condition)


def test_effects_intervals_and_p_values_against_scipy():
    table = compare_remedies(by_seed_table(SETS), "brain", ["fix", "same"])
    pick = table.set_index(["condition", "images", "measure"])
    fix = pick.loc[("fix", "AD", "cnn_AD")]
    # headline: the seed is the unit
    across = mean_interval([0.60, 0.70, 0.55])
    assert (fix.seed_mean, fix.seed_low, fix.seed_high) == pytest.approx(
        (across["mean"], across["low"], across["high"])
    )
    diffs = np.array([0.60, 0.70, 0.55]) - np.array([0.03, 0.05, 0.02])
    assert fix.effect == pytest.approx(diffs.mean())
    assert fix.p_value == pytest.approx(
        sps.ttest_rel([0.60, 0.70, 0.55], [0.03, 0.05, 0.02]).pvalue
    )
    low, high = sps.t.interval(0.95, 2, loc=diffs.mean(), scale=sps.sem(diffs))
    assert (fix.effect_low, fix.effect_high) == pytest.approx((low, high))
    assert 0 < fix.detectable < fix.effect and fix.paired_seeds == 3
    assert fix.sign_per_seed == "all +" and fix.per_seed == "60/100, 70/100, 55/100"
    # secondary: pooled over seeds, images treated as independent
    assert fix.pooled_k == 185 and fix.pooled_n == 300
    assert fix.pooled_fraction == pytest.approx(185 / 300)
    assert (fix.pooled_low, fix.pooled_high) == pytest.approx(wilson_interval(185, 300))
    assert fix.pooled_effect == pytest.approx(185 / 300 - 10 / 300)
    expected = sps.fisher_exact([[185, 115], [10, 290]])
    assert fix.pooled_p_value == pytest.approx(expected.pvalue) and fix.pooled_p_value < 1e-6
    assert fix.pooled_odds_ratio == pytest.approx(expected.statistic) and fix.pooled_odds_ratio > 1
    lik = pick.loc[("fix", "AD", "likelihood_AD")]
    assert lik.pooled_k == 70 + 80 + 65  # n - misclassified
    cn = pick.loc[("fix", "CN", "cnn_AD")]
    assert cn.p_value > 0.05 and cn.pooled_p_value > 0.3  # CN images did not turn AD
    same = pick.loc[("same", "AD", "cnn_AD")]  # identical to the baseline: no verdict
    assert same.effect == 0 and np.isnan(same.p_value) and np.isnan(same.detectable)
    assert same.note == "no spread between seeds"
    assert same.pooled_effect == 0 and same.pooled_p_value == pytest.approx(1.0)
    assert same.sign_per_seed == "mixed"
    brain = pick.loc[("brain", "AD", "cnn_AD")]
    assert np.isnan(brain.effect) and np.isnan(brain.pooled_effect)  # the baseline has none


def pair(remedy: list[int], baseline: list[int]) -> pd.DataFrame:
    """AD images of a baseline and a remedy: per-seed CNN AD counts out of 100."""
    sets = {
        ("brain", "AD"): [(k, 50, 100) for k in baseline],
        ("brain", "CN"): [(2, 1, 100)] * len(baseline),
        ("fix", "AD"): [(k, 50, 100) for k in remedy],
        ("fix", "CN"): [(2, 1, 100)] * len(remedy),
    }
    table = compare_remedies(by_seed_table(sets), "brain", ["fix"])
    return table.set_index(["condition", "images", "measure"]).loc[("fix", "AD", "cnn_AD")]


def test_pooled_images_overstate_what_disagreeing_seeds_show():
    # 0.9, 0.1, 0.8 against 0.5 in every seed: 180/300 vs 150/300 pooled looks significant,
    # but the seeds disagree, and with the seed as the unit there is no evidence.
    row = pair([90, 10, 80], [50, 50, 50])
    assert row.pooled_p_value == pytest.approx(sps.fisher_exact([[180, 120], [150, 150]]).pvalue)
    assert row.pooled_p_value < 0.02
    assert row.p_value > 0.3 and row.sign_per_seed == "mixed"
    assert row.effect == pytest.approx(0.1) and row.effect_low < 0 < row.effect_high
    assert row.detectable > 0.5  # so spread out that 3 seeds would miss even a large effect


def test_every_seed_moving_the_same_way_is_significant():
    row = pair([61, 69, 66], [30, 40, 35])  # +0.31, +0.29, +0.31
    assert row.effect == pytest.approx(0.3033, abs=1e-4)
    assert row.p_value < 0.05 and row.effect_low > 0 and row.sign_per_seed == "all +"
    assert row.detectable < 0.1


def test_ood_sets_are_flagged_and_unknown_conditions_named():
    flagged = by_seed_table(SETS, interpretable={("fix", "AD"): False})
    table = compare_remedies(flagged, "brain", ["fix"]).set_index(
        ["condition", "images", "measure"]
    )
    assert not table.loc[("fix", "AD", "cnn_AD")].interpretable
    assert table.loc[("fix", "AD", "likelihood_AD")].interpretable
    assert table.loc[("fix", "CN", "cnn_AD")].interpretable
    with pytest.raises(ValueError, match=r"\['missing'\]"):
        compare_remedies(by_seed_table(SETS), "brain", ["missing"])


def test_remedies_table_and_forest_plot_are_formatted_not_computed():
    table = compare_remedies(
        by_seed_table(SETS, interpretable={("fix", "AD"): False}), "brain", ["fix", "same"]
    )
    frame = remedies_frame(table)
    assert frame.condition.tolist() == ["brain", "fix", "same"]
    key = "AD images, predicted AD (CNN)"
    assert frame.loc[1, f"{key}: pooled k/n"] == "185/300"
    assert frame.loc[1, f"{key}: seed t 95% CI"] == "[0.43, 0.81]"
    assert frame.loc[1, f"{key}: effect t 95% CI"] == "[+0.43, +0.74]"
    assert frame.loc[1, f"{key}: p (paired t)"] == pytest.approx(0.003637, abs=1e-6)
    assert frame.loc[1, f"{key}: pooled Fisher p (images independent)"] < 1e-6
    assert frame.loc[0, "AD images, AD by likelihood: seed t 95% CI"] == "[0.00, 0.15]"  # clipped
    assert not frame.loc[1, "AD images: CNN interpretable"]
    text = remedies_markdown(table, "DEMO", synthetic=True)
    assert "SYNTHETIC" in text and "brain (baseline)" in text
    headline = "0.62 [0.43, 0.81] †; effect +0.58 [+0.43, +0.74], p 0.00364 (paired t), "
    assert headline + "detectable ±0.20, all +" in text
    assert "images treated as independent (secondary)" in text
    assert "185/300 = 0.62 [0.56, 0.67] †; +0.58, Fisher p <0.001, OR 46.65" in text
    assert text.index(headline) < text.index("185/300")  # the seed-level table comes first
    fig = remedies_forest(table, "DEMO", synthetic=True)
    assert len(fig.axes) == 2 and "SYNTHETIC" in fig._suptitle.get_text()
    assert "Student-t" in fig._suptitle.get_text()
    (first, *_) = fig.axes[0].lines  # the baseline's AD point sits at its seed mean
    assert first.get_xdata()[0] == pytest.approx(table.seed_mean.iloc[0])
