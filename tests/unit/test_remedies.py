"""The remedies table: fractions judged AD with intervals, effects against the baseline with
Fisher's p-values (checked against scipy), and the out-of-distribution flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from brainmr.evaluate.remedies import ad_counts, compare_remedies
from brainmr.evaluate.stats import mean_interval, wilson_interval
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
    assert fix.k == 185 and fix.n == 300 and fix.fraction == pytest.approx(185 / 300)
    assert (fix.pooled_low, fix.pooled_high) == pytest.approx(wilson_interval(185, 300))
    across = mean_interval([0.60, 0.70, 0.55])
    assert (fix.seed_mean, fix.seed_low, fix.seed_high) == pytest.approx(
        (across["mean"], across["low"], across["high"])
    )
    assert fix.effect == pytest.approx(185 / 300 - 10 / 300)
    expected = sps.fisher_exact([[185, 115], [10, 290]]).pvalue
    assert fix.p_value == pytest.approx(expected) and fix.p_value < 1e-6
    assert fix.sign_per_seed == "all +" and fix.per_seed == "60/100, 70/100, 55/100"
    lik = pick.loc[("fix", "AD", "likelihood_AD")]
    assert lik.k == 70 + 80 + 65  # n - misclassified
    cn = pick.loc[("fix", "CN", "cnn_AD")]
    assert cn.p_value > 0.3  # CN images did not turn AD
    same = pick.loc[("same", "AD", "cnn_AD")]  # identical to the baseline: no verdict
    assert same.effect == 0 and same.p_value == pytest.approx(1.0)
    assert same.sign_per_seed == "mixed"
    assert np.isnan(pick.loc[("brain", "AD", "cnn_AD")].effect)  # the baseline has no effect


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
    assert frame.loc[1, "AD images, predicted AD (CNN): k/n"] == "185/300"
    assert not frame.loc[1, "AD images: CNN interpretable"]
    text = remedies_markdown(table, "DEMO", synthetic=True)
    assert "SYNTHETIC" in text and "brain (baseline)" in text
    assert "0.62 [0.56, 0.67] †; +0.58, p <0.001 (all +)" in text
    fig = remedies_forest(table, "DEMO", synthetic=True)
    assert len(fig.axes) == 2 and "SYNTHETIC" in fig._suptitle.get_text()
