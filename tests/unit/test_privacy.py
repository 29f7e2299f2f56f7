"""brainmr.evaluate.studies.privacy: the attack's AUC and true-positive rates, the memorization
threshold with its interval, copies per training subject and the step curve, each on cases
whose answer is known, at the demo's sizes and at the paper's (300 AD / 400 CN)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from brainmr.evaluate.studies.privacy import (
    attack_figures,
    attack_summary,
    copies_per_subject,
    copies_summary,
    most_copied,
    step_curve,
    threshold_interval,
    tpr_at_fpr,
)

# (members, non-members) of one shared model: the demo's 19 train / 9 held-out subjects, and
# the paper's 300 AD / 400 CN with config/adni.yaml's 20% held out
DEMO, PAPER = (19, 9), (560, 140)


def test_tpr_at_a_false_positive_rate_reads_the_roc_curve_at_a_known_point():
    nonmembers = np.arange(100.0)  # scores 0..99
    members = np.array([98.5, 50.5, 200.0])
    # FPR 1%: only the non-member scoring 99 may pass, so 98.5 and 200 are caught: 2 of 3
    assert tpr_at_fpr(members, nonmembers, 0.01) == pytest.approx(2 / 3)
    assert tpr_at_fpr(members, nonmembers, 0.10) == pytest.approx(2 / 3)
    assert tpr_at_fpr(members, nonmembers, 0.50) == pytest.approx(1.0)
    # fewer than 1/f non-members cannot resolve a rate of f
    assert math.isnan(tpr_at_fpr(members, nonmembers[:9], 0.10))
    assert tpr_at_fpr(members, nonmembers[-10:], 0.10) == pytest.approx(2 / 3)  # 99 passes
    assert tpr_at_fpr(members, nonmembers[-10:] + 10, 0.10) == pytest.approx(1 / 3)
    assert math.isnan(tpr_at_fpr(members, nonmembers[:99], 0.01))


@pytest.mark.parametrize("sizes", [DEMO, PAPER], ids=["demo", "paper"])
def test_attack_auc_is_sklearns_and_its_interval_covers_a_known_auc(sizes):
    """Members' losses lower by half a standard deviation: the true AUC is Phi(0.5 / sqrt 2)
    = 0.638. Over 100 draws the bootstrap interval covers it in at least 85% (nominal 95%), and
    with no difference (shuffled membership) it holds 0.5 as often."""
    n_members, n_nonmembers = sizes
    truth = stats.norm.cdf(0.5 / math.sqrt(2))
    rng = np.random.default_rng(0)
    covered = held = 0
    for i in range(100):
        loss = np.r_[rng.normal(-0.5, 1, n_members), rng.normal(0, 1, n_nonmembers)]
        member = np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)]
        figures = attack_figures(loss, member, n_boot=400, seed=i)
        assert figures["auc"] == pytest.approx(roc_auc_score(member, -loss))
        assert figures["n_members"] == n_members and figures["n_nonmembers"] == n_nonmembers
        covered += figures["auc_low"] <= truth <= figures["auc_high"]
        shuffled = attack_figures(loss, rng.permutation(member), n_boot=400, seed=i)
        held += shuffled["auc_low"] <= 0.5 <= shuffled["auc_high"]
    assert covered >= 85 and held >= 85
    # the paper's 140 non-members resolve 1% false positives; the demo's 9 resolve neither rate
    resolved = np.isfinite(figures["tpr_at_1pct_fpr"]), np.isfinite(figures["tpr_at_10pct_fpr"])
    assert resolved == ((True, True) if sizes == PAPER else (False, False))


def test_attack_summary_averages_seeds_with_a_t_interval_beside_the_base():
    attacks = pd.DataFrame(
        {
            "condition": "brain",
            "model": "shared",
            "stage": ["seed0", "seed1", "seed2", "base"],
            "auc": [0.9, 0.8, 0.7, 0.52],
            "auc_low": [0.8, 0.7, 0.6, 0.3],
            "auc_high": [1.0, 0.9, 0.8, 0.7],
            "tpr_at_1pct_fpr": np.nan,
            "tpr_at_10pct_fpr": [0.5, 0.4, 0.3, 0.1],
            "n_members": 19,
            "n_nonmembers": 9,
        }
    )
    (row,) = attack_summary(attacks).itertuples()
    low, high = stats.t.interval(0.95, 2, loc=0.8, scale=stats.sem([0.9, 0.8, 0.7]))
    assert row.auc_mean == pytest.approx(0.8) and row.n_seeds == 3
    assert (row.auc_low, row.auc_high) == pytest.approx((low, min(high, 1.0)))
    assert row.base_auc == 0.52 and (row.base_auc_low, row.base_auc_high) == (0.3, 0.7)
    assert row.auc_per_seed == "0.90, 0.80, 0.70"
    assert row.tpr_at_10pct_fpr_mean == pytest.approx(0.4)
    assert math.isnan(row.tpr_at_1pct_fpr_mean)


@pytest.mark.parametrize("n_reals", [DEMO[1], PAPER[1]], ids=["demo", "paper"])
def test_the_memorization_threshold_comes_with_its_interval_and_how_few_reals_it_rests_on(
    n_reals,
):
    values = np.random.default_rng(1).uniform(0.3, 0.8, n_reals)
    out = threshold_interval(values, 0.99, n_boot=500, seed=0)
    assert out["threshold"] == pytest.approx(np.quantile(values, 0.99))
    assert out["n_reals"] == n_reals and out["reals_needed"] == 100
    assert values.min() <= out["threshold_low"] <= out["threshold"] <= out["threshold_high"]
    assert out["threshold_high"] <= values.max()
    if n_reals < 100:  # then the quantile lies between the two largest values
        assert out["threshold"] >= np.sort(values)[-2]


def test_copies_per_subject_counts_known_copies_above_the_threshold():
    train = pd.DataFrame(
        {"subject": ["A", "B", "C"], "group": ["AD", "CN", "CN"], "path": ["a", "b", "c"]}
    )
    generated = pd.DataFrame(
        {
            "nn_path": ["a", "a", "a", "c", "b"],
            "nn_corr": [0.95, 0.91, 0.5, 0.99, 0.89],
        }
    )
    out = copies_per_subject(generated, train, threshold=0.9)
    assert out["copies"].tolist() == [2, 0, 1]
    assert out["max_corr"].tolist() == [0.95, 0.89, 0.99]


def test_share_copied_is_the_mean_across_seeds_with_a_t_interval():
    rows = []
    for seed, copied in enumerate([["A"], ["A", "B"], ["C"]]):
        for subject in "ABC":
            copies = 2 if subject in copied else 0
            rows.append({"seed": seed, "subject": subject, "group": "AD", "copies": copies})
    per_seed = pd.DataFrame(rows).assign(max_corr=0.5)
    out = copies_summary(per_seed)
    shares = [1 / 3, 2 / 3, 1 / 3]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(shares), scale=stats.sem(shares))
    assert out["share_copied_mean"] == pytest.approx(np.mean(shares))
    assert (out["share_copied_low"], out["share_copied_high"]) == pytest.approx(
        (max(low, 0.0), min(high, 1.0))
    )
    assert out["copies_per_seed"] == "2, 4, 2"
    top = most_copied(per_seed, top=2)
    assert top["subject"].tolist() == ["A", "B"] and top["copies"].tolist() == [4, 2]
    assert top["copies_per_seed"].tolist() == ["2, 2, 0", "0, 2, 0"]


def test_step_curve_counts_copies_per_step_and_seed():
    steps = pd.DataFrame(
        {
            "condition": "brain",
            "seed": [0, 0, 1, 1, 0, 0, 1, 1],
            "step": [50] * 4 + [150] * 4,
            "nn_corr": [0.2, 0.3, 0.25, 0.35, 0.95, 0.4, 0.97, 0.99],
        }
    )
    out = step_curve(steps, threshold=0.9).set_index("step")
    assert out.loc[50, "copies"] == 0 and out.loc[150, "copies"] == 3
    assert out.loc[150, "copy_share_mean"] == pytest.approx(0.75)  # seeds: 1/2 and 2/2
    assert out.loc[150, "nn_corr_max"] == 0.99 and out.loc[50, "n_images"] == 4


def test_the_report_writes_the_table_the_notes_and_a_figure_per_condition(tmp_path):
    """report/privacy from constructed evaluate outputs: the csv, the markdown with its
    SYNTHETIC label, the not-estimable cells and the few-reals sentence, and the figures, the
    step figure with the threshold drawn."""
    from brainmr import io
    from brainmr.report.privacy import steps_figure, write_privacy

    attacks = pd.DataFrame(
        {
            "condition": "brain",
            "model": "shared",
            "stage": ["seed0", "seed1", "base"],
            "auc": [0.9, 0.8, 0.5],
            "auc_low": [0.8, 0.7, 0.3],
            "auc_high": [1.0, 0.9, 0.7],
            "tpr_at_1pct_fpr": np.nan,
            "tpr_at_10pct_fpr": np.nan,
            "n_members": 19,
            "n_nonmembers": 9,
        }
    )
    summary = attack_summary(attacks).assign(
        share_copied_mean=0.1, share_copied_low=0.0, share_copied_high=0.3, copies_per_seed="1, 2"
    )
    steps = pd.DataFrame(
        {"condition": "brain", "seed": 0, "step": [50, 150], "nn_corr": [0.5, 0.97]}
    )
    files = {name: tmp_path / f"{name}.tsv" for name in ("summary", "attacks", "subjects", "steps")}
    io.write_tsv(files["summary"], summary)
    io.write_tsv(files["attacks"], attacks)
    io.write_tsv(files["subjects"], pd.DataFrame(columns=["subject", "group", "copies"]))
    io.write_tsv(files["steps"], step_curve(steps, threshold=0.95))
    threshold = {"threshold": 0.95, "threshold_low": 0.9, "threshold_high": 0.96}
    io.write_json(
        tmp_path / "t.json", threshold | {"n_reals": 9, "reals_needed": 100} | {"quantile": 0.99}
    )
    out = {"csv": tmp_path / "p.csv", "md": tmp_path / "p.md", "attack": tmp_path / "a.png"}
    write_privacy(
        **files,
        threshold=tmp_path / "t.json",
        conditions=["brain"],
        run_label="TEST",
        synthetic=True,
        out_csv=out["csv"],
        out_md=out["md"],
        out_attack=out["attack"],
        out_steps=[tmp_path / "s.png"],
    )
    text = out["md"].read_text(encoding="utf-8")
    assert "SYNTHETIC" in text and "| brain | shared | 0.85 [" in text
    assert "not estimable (9 non-members; needs 10)" in text and "9 is few" in text
    assert "No training subject was copied" in text
    assert pd.read_csv(out["csv"]).loc[0, "base_auc"] == 0.5
    assert out["attack"].stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0
    figure = steps_figure(io.read_tsv(files["steps"]), "brain", 0.95, "TEST", True)
    lines = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "memorization threshold" in lines
