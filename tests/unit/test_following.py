"""brainmr.evaluate.studies.following: instruction-following figures on numbers with known
answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brainmr.evaluate.judges.morphometry import HELD_OUT
from brainmr.evaluate.studies.following import (
    ACROSS,
    FIGURES,
    GENERATED,
    INSTRUCTED,
    SHUFFLED,
    TABLE_COLUMNS,
    TRUE_ROLE,
    follow_figures,
    instructed_images,
    instruction_table,
    morphometry_following,
    sex_confusion,
    shuffled_requests,
)


def requests(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(55, 90, n), np.array(["F", "M"] * (n // 2))


def test_follow_figures_recover_a_known_half_scale_age_response():
    age, sex = requests(200, 0)
    rng = np.random.default_rng(1)
    predicted = 0.5 * age + 35 + rng.normal(0, 1.0, age.size)
    prob_m = np.where(sex == "M", 0.9, 0.1)
    out = follow_figures(age, predicted, sex, prob_m, n_boot=500, seed=0)
    assert out["n"] == 200
    assert out["age_slope_low"] < 0.5 < out["age_slope_high"]
    assert out["age_slope_high"] - out["age_slope_low"] < 0.1  # noise 1 y over a 35 y range
    assert out["age_r"] > 0.95 and out["age_r_low"] > 0.9 and out["age_r_high"] < 1
    mae = np.mean(np.abs(predicted - age))
    assert out["age_mae"] == pytest.approx(mae)
    # the bootstrap interval of a mean spans about +-1.96 of its standard errors (+-0.41 y here)
    se = np.abs(predicted - age).std() / np.sqrt(age.size)
    assert out["age_mae_high"] - out["age_mae_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert out["sex_accuracy"] == 1.0 and out["sex_accuracy_high"] == 1.0


def test_follow_figures_of_an_ignored_request_include_zero():
    age, sex = requests(60, 2)
    predicted = np.random.default_rng(3).uniform(55, 90, age.size)
    out = follow_figures(age, predicted, sex, np.full(age.size, 0.5), n_boot=200)
    assert out["age_r_low"] < 0 < out["age_r_high"]
    assert out["age_slope_low"] < 0 < out["age_slope_high"]
    assert out["age_r"] == pytest.approx(sps.pearsonr(age, predicted).statistic)


def test_sex_accuracy_on_a_hand_made_case_with_its_wilson_interval():
    sex = ["F", "F", "F", "F", "M", "M", "M", "M"]
    prob_m = [0.1, 0.2, 0.6, 0.3, 0.9, 0.5, 0.4, 0.8]  # 0.6 (F) and 0.4 (M) wrong; 0.5 is M
    out = follow_figures(np.linspace(60, 80, 8), np.linspace(60, 80, 8), sex, prob_m, n_boot=50)
    assert out["sex_accuracy"] == 0.75
    ci = sps.binomtest(6, 8).proportion_ci(method="wilson")
    assert (out["sex_accuracy_low"], out["sex_accuracy_high"]) == pytest.approx((ci.low, ci.high))
    assert out["age_mae"] == 0 and out["age_r"] == pytest.approx(1.0)


def test_undefined_figures_are_nan_and_bad_inputs_raise():
    out = follow_figures([70.0] * 5, [60, 65, 70, 75, 80], ["F"] * 5, [0.2] * 5, n_boot=50)
    assert math.isnan(out["age_r"]) and math.isnan(out["age_slope"])
    assert out["age_mae"] == pytest.approx(6.0) and out["sex_accuracy"] == 1.0
    empty = follow_figures([], [], [], [], n_boot=50)
    assert empty["n"] == 0 and all(math.isnan(empty[f]) for f in ("age_r", "age_mae"))
    with pytest.raises(ValueError, match=r"sex must be F or M.*'X'"):
        follow_figures([70, 71], [70, 71], ["F", "X"], [0.1, 0.2])
    with pytest.raises(ValueError, match="not aligned"):
        follow_figures([70, 71], [70], ["F", "M"], [0.1, 0.2])


def test_morphometry_following_known_slope_and_sex_difference():
    age, sex = requests(80, 4)
    rng = np.random.default_rng(5)
    measures = pd.DataFrame(
        {
            "ventricle_area_mm2": 12.0 * age - 300 + rng.normal(0, 20, age.size),
            "brain_area_mm2": np.where(sex == "M", 11000.0, 10000.0) + rng.normal(0, 200, age.size),
        }
    )
    measures.loc[3, "ventricle_area_mm2"] = np.nan  # an image without a brain is left out
    out = morphometry_following(age, sex, measures)
    assert out["ventricle_slope_low"] < 12 < out["ventricle_slope_high"]
    assert out["ventricle_slope_high"] - out["ventricle_slope_low"] < 2
    assert out["brain_area_M_minus_F_low"] < 1000 < out["brain_area_M_minus_F_high"]
    brain = measures["brain_area_mm2"]
    expected = brain[sex == "M"].mean() - brain[sex == "F"].mean()
    assert out["brain_area_M_minus_F"] == pytest.approx(expected)
    one_sex = morphometry_following(age, np.full(age.size, "F"), measures)
    assert math.isnan(one_sex["brain_area_M_minus_F"]) and np.isfinite(one_sex["ventricle_slope"])


def test_shuffled_requests_is_a_seeded_permutation_of_the_pairs():
    age, sex = requests(30, 6)
    frame = pd.DataFrame({"image": range(30), "requested_age": age, "requested_sex": sex})
    out = shuffled_requests(frame, seed=3)
    assert out["image"].tolist() == list(range(30))  # only the request columns move
    assert sorted(out["requested_age"]) == sorted(age)
    assert not np.array_equal(out["requested_age"].to_numpy(), age)
    pairs = set(zip(age, sex, strict=True))
    assert set(zip(out["requested_age"], out["requested_sex"], strict=True)) == pairs
    pd.testing.assert_frame_equal(out, shuffled_requests(frame, seed=3))
    assert not shuffled_requests(frame, seed=4).equals(out)
    assert frame["requested_age"].tolist() == age.tolist()  # input untouched


def image_set(condition, group, role, seed, n, follow, in_distribution, rng) -> pd.DataFrame:
    age, sex = requests(n, int(rng.integers(1 << 30)))
    predicted = (follow * age + (1 - follow) * 72) + rng.normal(0, 2, n)
    return pd.DataFrame(
        {
            "seed": seed,
            "condition": condition,
            "group": group,
            "role": role,
            "requested_age": age,
            "requested_sex": sex,
            "predicted_age": predicted,
            "prob_M": np.clip(np.where(sex == "M", 0.8, 0.3) + rng.normal(0, 0.2, n), 0, 1),
            "brain_area_mm2": 10000 + 500 * (sex == "M") + rng.normal(0, 100, n),
            "ventricle_area_mm2": 5 * age + rng.normal(0, 30, n),
            "outlier": [True] + [False] * (n - 1),  # one outlier per set, wildly off
            "cnn_interpretable": in_distribution,
        }
    ).assign(predicted_age=lambda t: np.where(t["outlier"], 500.0, t["predicted_age"]))


def toy_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    sets = []
    for seed in (0, 1, 2):
        # seed 2's instructed AD set is out of distribution; the CN baseline never is in it
        sets += [
            image_set("brain", "AD", INSTRUCTED, seed, 20, 0.8, seed != 2, rng),
            image_set("brain", "AD", SHUFFLED, seed, 20, 0.0, True, rng),
            image_set("brain", "CN", SHUFFLED, seed, 20, 0.0, False, rng),
        ]
    images = pd.concat(sets[::-1], ignore_index=True)  # order of rows must not matter
    age, sex = requests(24, 8)
    reals = pd.DataFrame(
        {
            "group": np.repeat(["AD", "CN"], 12),
            "age": age,
            "sex": sex,
            "predicted_age": 0.9 * age + 7 + rng.normal(0, 3, 24),
            "prob_M": np.where(sex == "M", 0.7, 0.2),
            "brain_area_mm2": 10000 + 400 * (sex == "M") + rng.normal(0, 100, 24),
            "ventricle_area_mm2": 6 * age + rng.normal(0, 30, 24),
        }
    )
    return images, reals


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    images, reals = toy_tables()
    return instruction_table(images, reals, n_boot=200, seed=0)


def select(table, group, role, seed) -> pd.DataFrame:
    keep = (table["group"] == group) & (table["role"] == role)
    return table[keep & (table["seed"].astype(str) == str(seed))]


def test_calibration_rows_are_the_figures_of_the_reals_against_their_truth(table):
    _, reals = toy_tables()
    calibration = table[table["source"] == HELD_OUT]
    assert calibration["group"].tolist() == ["AD", "CN", "all"]
    assert (calibration["role"] == TRUE_ROLE).all() and not calibration["headline"].any()
    ad = calibration.iloc[0]
    truth = reals[reals["group"] == "AD"]
    expected = follow_figures(truth["age"], truth["predicted_age"], truth["sex"], truth["prob_M"])
    assert ad["n"] == 12 and ad["age_r"] == pytest.approx(expected["age_r"])
    assert ad["age_slope"] == pytest.approx(expected["age_slope"])
    assert calibration.iloc[2]["n"] == 24 and calibration.iloc[2]["age_r"] > 0.8
    assert 3 < calibration.iloc[2]["ventricle_slope"] < 9


def test_per_seed_rows_leave_out_outliers(table):
    assert list(table.columns) == TABLE_COLUMNS
    images, _ = toy_tables()
    row = select(table, "AD", INSTRUCTED, 0).iloc[0]
    part = images[(images["seed"] == 0) & (images["group"] == "AD")]
    part = part[(part["role"] == INSTRUCTED) & ~part["outlier"]]
    expected = follow_figures(
        part["requested_age"], part["predicted_age"], part["requested_sex"], part["prob_M"]
    )
    assert row["n"] == 19 and row["n_outliers"] == 1 and row["in_distribution"]
    assert row["age_mae"] == pytest.approx(expected["age_mae"])
    assert row["age_mae"] < 10  # the 500 y outlier is left out
    assert row["age_slope"] == pytest.approx(expected["age_slope"])
    generated = table[table["source"] == GENERATED]
    order = list(
        zip(generated["group"], generated["role"], generated["seed"].astype(str), strict=True)
    )
    assert order[:3] == [("AD", INSTRUCTED, "0"), ("AD", INSTRUCTED, "1"), ("AD", INSTRUCTED, "2")]
    assert order[-3:] == [
        ("AD", INSTRUCTED, ACROSS),
        ("AD", SHUFFLED, ACROSS),
        ("CN", SHUFFLED, ACROSS),
    ]


def test_across_seed_row_is_the_mean_of_in_distribution_seeds_with_a_t_interval(table):
    per_seed = pd.concat([select(table, "AD", INSTRUCTED, s) for s in (0, 1, 2)])
    assert per_seed["in_distribution"].tolist() == [True, True, False]  # kept, but marked
    across = select(table, "AD", INSTRUCTED, ACROSS).iloc[0]
    assert across["headline"] and not across["in_distribution"]
    assert across["n_seeds"] == 2 and across["seeds_used"] == "0,1"
    for figure in FIGURES:
        values = per_seed[figure].to_numpy(float)[:2]  # seed 2 is out of the headline
        if figure == "age_r":  # a correlation: in Fisher's z, back to r
            values = np.arctanh(values)
        mean, sd = values.mean(), values.std(ddof=1)
        half = sps.t.ppf(0.975, 1) * sd / np.sqrt(2)
        low, high = mean - half, mean + half
        if figure == "age_r":
            mean, low, high = np.tanh(mean), np.tanh(low), np.tanh(high)
        bounds = {"sex_accuracy": (0, 1), "sex_auc": (0, 1), "age_mae": (0, np.inf)}
        low, high = np.clip([low, high], *bounds.get(figure, (-np.inf, np.inf)))
        assert across[figure] == pytest.approx(mean)
        assert across[f"{figure}_low"] == pytest.approx(low)
        assert across[f"{figure}_high"] == pytest.approx(high)
        assert across[f"{figure}_high"] <= 1 or figure not in ("age_r", "sex_accuracy", "sex_auc")
    assert across["age_slope"] > 0.6  # the instructed set follows (0.8), the baseline does not
    baseline = select(table, "AD", SHUFFLED, ACROSS).iloc[0]
    assert baseline["headline"] and baseline["in_distribution"] and baseline["n_seeds"] == 3
    assert abs(baseline["age_slope"]) < 0.2


def test_a_set_never_in_distribution_has_no_headline(table):
    across = select(table, "CN", SHUFFLED, ACROSS).iloc[0]
    per_seed = pd.concat([select(table, "CN", SHUFFLED, s) for s in (0, 1, 2)])
    assert not across["headline"] and not across["in_distribution"]
    assert across["n_seeds"] == 3  # figures still shown (marked), across every seed
    assert across["age_r"] == pytest.approx(np.tanh(np.arctanh(per_seed["age_r"]).mean()))


def test_instruction_table_rejects_a_mixed_verdict_and_unknown_roles():
    images, reals = toy_tables()
    mixed = images.copy()
    mixed.loc[mixed.index[0], "cnn_interpretable"] = not mixed.loc[
        mixed.index[0], "cnn_interpretable"
    ]
    with pytest.raises(ValueError, match="cnn_interpretable differs"):
        instruction_table(mixed, reals, n_boot=50)
    with pytest.raises(ValueError, match="unknown role"):
        instruction_table(images.assign(role="class only"), reals, n_boot=50)


def test_write_instructions_formats_the_table_and_draws_each_seed(table, tmp_path):
    from brainmr.report.instructions import instructions_markdown, write_instructions

    images, reals = toy_tables()
    text = instructions_markdown(table, {"brain": '"brain"'}, "toy run", synthetic=True)
    assert "SYNTHETIC DEMO DATA" in text and '### AD, "brain"' in text
    ad = select(table, "AD", INSTRUCTED, ACROSS).iloc[0]
    assert f"{INSTRUCTED} †" in text  # seed 2 out of distribution
    assert f"{ad['age_r']:.2f} [{ad['age_r_low']:.2f}, {ad['age_r_high']:.2f}]" in text
    assert "no seed in distribution" in text  # the CN baseline
    outputs = {s: tmp_path / f"seed{s}.png" for s in (0, 2)}
    write_instructions(
        table=table,
        images=images,
        reals=reals,
        labels={},
        run_label="toy run",
        synthetic=False,
        out_csv=tmp_path / "t.csv",
        out_md=tmp_path / "t.md",
        out_figures=outputs,
    )
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(table)
    assert "SYNTHETIC" not in (tmp_path / "t.md").read_text()
    assert all(p.stat().st_size > 0 for p in outputs.values())


def test_a_judge_that_cannot_read_the_reals_is_marked_and_its_figures_flagged(table):
    """The toy reals' ages are read well (r > 0.8): the age judge counts. The same reals with
    the judge's readings shuffled: its r on the reals holds 0, and every age figure is ‡."""
    from brainmr.report.instructions import instructions_markdown

    assert table["age_judge_valid"].all() and table["sex_judge_valid"].all()
    images, reals = toy_tables()
    blind = reals.assign(predicted_age=np.random.default_rng(3).permutation(reals.predicted_age))
    unread = instruction_table(images, blind, n_boot=200, seed=0)
    assert not unread["age_judge_valid"].any() and unread["sex_judge_valid"].all()
    md = instructions_markdown(unread, {}, "toy", True)
    generated = [line for line in md.splitlines() if line.startswith("| instructed")]
    assert generated and all(line.count("‡") == 3 for line in generated)  # r, slope, MAE
    valid = instructions_markdown(table, {}, "toy", True).splitlines()
    assert not [line for line in valid if line.startswith("| instructed") and "‡" in line]


def test_sex_auc_reads_the_judges_probability_against_the_request():
    """P(M) ordering the requests perfectly gives AUC 1; reversed, 0; one sex requested: nan."""
    age = np.array([60.0, 70.0, 80.0, 65.0])
    sex = np.array(["F", "F", "M", "M"])
    good = follow_figures(age, age, sex, [0.1, 0.4, 0.6, 0.9], n_boot=100)
    bad = follow_figures(age, age, sex, [0.9, 0.6, 0.4, 0.1], n_boot=100)
    assert good["sex_auc"] == 1.0 and bad["sex_auc"] == 0.0
    one = follow_figures(age, age, np.array(["F"] * 4), [0.1, 0.4, 0.6, 0.9], n_boot=100)
    assert math.isnan(one["sex_auc"])


def test_sex_confusion_counts_requested_against_judged_sex():
    """P(M) >= 0.5 is judged M (0.5 itself too); requests read with surrounding spaces."""
    requested = pd.Series(["F", "F", "F", " M", "M", "M", "M"])
    prob_m = pd.Series([0.1, 0.5, 0.7, 0.9, 0.2, 0.6, 0.49])
    counts = sex_confusion(requested, prob_m)
    assert counts.tolist() == [[1, 2], [2, 2]]  # rows requested F, M; columns judged F, M


def test_instructed_images_keep_one_seeds_instructed_non_outliers():
    """Outlier flags as read back from a TSV (text), seeds as numbers or text."""
    images = pd.DataFrame(
        {
            "seed": [0, 1, 1, 1, 1, 2],
            "role": [INSTRUCTED, INSTRUCTED, INSTRUCTED, SHUFFLED, INSTRUCTED, INSTRUCTED],
            "outlier": ["False", "False", "True", "False", "False", "False"],
            "requested_age": [60.0, 61.0, 62.0, 63.0, 64.0, 65.0],
        }
    )
    kept = instructed_images(images, "1")
    assert kept["requested_age"].tolist() == [61.0, 64.0]
    assert instructed_images(images, 0)["requested_age"].tolist() == [60.0]


def test_an_always_male_sex_judge_is_not_valid_where_most_reals_are_male():
    """84 of 140 held-out reals male: a judge that always says M scores 60% (Wilson lower bound
    0.52 > 0.5, which the former bar took for skill); the majority share and the AUC refuse it."""
    from brainmr.evaluate.studies.following import follow_figures, sex_judge_valid

    sexes = np.array(["M"] * 84 + ["F"] * 56)
    ages = np.linspace(60, 90, 140)
    always_m = follow_figures(ages, ages, sexes, np.full(140, 0.9), n_boot=200)
    assert always_m["sex_accuracy_low"] > 0.5  # the old bar passed it
    assert not sex_judge_valid(always_m, sexes)
    rng = np.random.default_rng(0)
    skilled_prob = np.where(sexes == "M", 0.8, 0.2) + rng.normal(0, 0.1, 140)
    skilled = follow_figures(ages, ages, sexes, np.clip(skilled_prob, 0, 1), n_boot=200)
    assert sex_judge_valid(skilled, sexes)


def test_the_age_judge_needs_the_stated_minimum_r():
    from brainmr.evaluate.studies.following import MIN_AGE_R, age_judge_valid

    assert age_judge_valid({"age_r": 0.5, "age_r_low": 0.3})
    weak = {"age_r": MIN_AGE_R - 0.05, "age_r_low": 0.1}  # above 0 with confidence, yet weak
    assert not age_judge_valid(weak)
    assert not age_judge_valid({"age_r": 0.5, "age_r_low": -0.1})
