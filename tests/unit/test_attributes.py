"""brainmr.evaluate.studies.attributes: the age and sex judges learn anatomy that encodes age and
sex,
and learn nothing when the ages they train on are shuffled (toy slices, tiny CNN, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps
from toy_evaluation import wilson

from brainmr import SLICE_SIZE, io
from brainmr.config import stage_config
from brainmr.evaluate.config import ClassifierConfig
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.studies.attributes import (
    PREDICTION_COLUMNS,
    load_attribute_judges,
    predict_attributes,
    train_attribute_judges,
)

ARCH = {"channels": [8, 16], "dropout": 0.0}
N_TRAIN, N_TEST = 32, 12


def toy_attribute_slice(age: float, sex: str, rng: np.random.Generator) -> np.ndarray:
    """A bright disc 'brain', larger for M, holding a dark central blob that grows with age."""
    yy, xx = np.mgrid[0:SLICE_SIZE, 0:SLICE_SIZE].astype(np.float32)
    cy, cx = 80 + rng.normal(0, 1.5, 2)
    r = (62.0 if sex == "M" else 44.0) + rng.normal(0, 1.0)
    blob = 4.0 + 0.55 * (age - 55.0)  # 4 px at 55 y, ~23 px at 90 y
    dist = np.hypot(yy - cy, xx - cx)
    image = np.where(dist < r, 0.8, 0.0).astype(np.float32)
    image[dist < blob] = 0.15
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def write_scans(folder, n: int, split: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ages = rng.uniform(55, 90, n)
    sexes = np.array(["F", "M"] * (n // 2))
    rng.shuffle(sexes)
    rows = []
    for i, (age, sex) in enumerate(zip(ages, sexes, strict=True)):
        subject = f"{split}_{i:03d}"
        path = folder / f"{subject}.npy"
        io.save_npy(path, toy_attribute_slice(age, sex, rng))
        group = "AD" if i % 2 else "CN"
        rows.append(
            dict(subject=subject, group=group, split=split, path=str(path), age=age, sex=sex)
        )
    return pd.DataFrame(rows)


def config(**overrides) -> ClassifierConfig:
    values = dict(
        cnn_epochs=40, cnn_batch_size=8, cnn_patience=10, cnn_input_size=32, n_bootstrap=200
    )
    return stage_config(ClassifierConfig, "evaluate", **(values | overrides))


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("attributes")
    return pd.concat(
        [write_scans(folder, N_TRAIN, "train", 1), write_scans(folder, N_TEST, "test", 2)],
        ignore_index=True,
    )


def train(scans: pd.DataFrame, folder, **overrides) -> tuple[dict, object]:
    model, metrics = folder / "judges.pt", folder / "judges.json"
    train_attribute_judges(
        scans=scans, out_model=model, out_metrics=metrics, cfg=config(**overrides), arch=ARCH
    )
    return json.loads(metrics.read_text()), model


def test_judges_read_age_and_sex_from_anatomy_on_held_out_slices(scans, tmp_path):
    metrics, model = train(scans, tmp_path)
    pooled = {row["group"]: row for row in metrics["calibration"]}["all"]
    assert [row["group"] for row in metrics["calibration"]] == ["AD", "CN", "all"]
    assert pooled["n"] == N_TEST and metrics["n_test"] == N_TEST
    assert pooled["age_r"] > 0.5 and pooled["age_r_low"] > 0
    assert pooled["sex_accuracy"] > 0.75 and pooled["sex_auc"] > 0.75
    assert metrics["age_sd"] > 0 and 55 < metrics["age_mean"] < 90

    # the saved judges reproduce the calibration from the file alone
    judges = load_attribute_judges(model, torch.device("cpu"))
    test = scans[scans["split"] == "test"]
    predicted = predict_attributes(judges, load_normalised(test["path"]), batch_size=5)
    assert list(predicted.columns) == PREDICTION_COLUMNS and len(predicted) == N_TEST
    assert predicted["prob_M"].between(0, 1).all()
    r = np.corrcoef(test["age"], predicted["predicted_age"])[0, 1]
    assert r == pytest.approx(pooled["age_r"], abs=1e-4)
    errors = np.abs(test["age"].to_numpy() - predicted["predicted_age"].to_numpy())
    assert errors.mean() == pytest.approx(pooled["age_mae"], abs=1e-4)
    # the intervals, recomputed independently: the slope's t interval (least squares) ...
    fit = sps.linregress(test["age"], predicted["predicted_age"])
    half = sps.t.ppf(0.975, N_TEST - 2) * fit.stderr
    slope = (pooled["age_slope"], pooled["age_slope_low"], pooled["age_slope_high"])
    assert slope == pytest.approx((fit.slope, fit.slope - half, fit.slope + half), abs=1e-3)
    # ... Wilson's interval for the sex accuracy, by its closed form ...
    correct = int(np.sum((predicted["prob_M"] >= 0.5) == (test["sex"] == "M").to_numpy()))
    assert pooled["sex_accuracy"] == correct / N_TEST
    accuracy = (pooled["sex_accuracy_low"], pooled["sex_accuracy_high"])
    assert accuracy == pytest.approx(wilson(correct, N_TEST), abs=1e-9)
    # ... and the MAE's bootstrap interval spans about +-1.96 standard errors of a mean
    width = pooled["age_mae_high"] - pooled["age_mae_low"]
    assert width == pytest.approx(2 * 1.96 * errors.std() / np.sqrt(N_TEST), rel=0.3)


def test_age_judge_trained_on_shuffled_ages_does_not_follow_age(scans, tmp_path):
    shuffled = scans.copy()
    is_train = (shuffled["split"] == "train").to_numpy()
    ages = shuffled.loc[is_train, "age"].to_numpy()
    shuffled.loc[is_train, "age"] = np.random.default_rng(5).permutation(ages)
    # the shuffle broke the link: the training ages no longer follow the anatomy
    assert abs(np.corrcoef(ages, shuffled.loc[is_train, "age"])[0, 1]) < 0.3
    metrics, _ = train(shuffled, tmp_path)
    pooled = metrics["calibration"][-1]
    assert abs(pooled["age_r"]) < 0.5 or pooled["age_r_low"] <= 0 <= pooled["age_r_high"]


def test_missing_age_names_the_subject(scans, tmp_path):
    bad = scans.assign(age=scans["age"].astype(object))
    bad.loc[3, "age"] = np.nan
    bad.loc[5, "age"] = "old"
    with pytest.raises(ValueError, match=r"age.*train_003.*train_005"):
        train(bad, tmp_path)


def test_unknown_sex_names_the_subject(scans, tmp_path):
    bad = scans.copy()
    bad.loc[len(bad) - 1, "sex"] = "X"
    with pytest.raises(ValueError, match=r"sex must be F or M.*test_011: 'X'"):
        train(bad, tmp_path)


def write_set(folder, condition, group, ages, sexes, rng, requests=True) -> pd.DataFrame:
    """A generated set in generate_images' layout: PNGs and manifest.tsv (with requests)."""
    folder.mkdir(parents=True)
    rows = []
    for i, (age, sex) in enumerate(zip(ages, sexes, strict=True)):
        name = f"{condition}_{group}_{i:03d}.png"
        io.save_png_gray(folder / name, toy_attribute_slice(age, sex, rng))
        row = {"file": name, "seed": i, "prompt": "p", "condition": condition, "group": group}
        rows.append(row | ({"requested_age": age, "requested_sex": sex} if requests else {}))
    io.write_tsv(folder / "manifest.tsv", pd.DataFrame(rows))
    return pd.DataFrame(rows).assign(path=[str(folder / r["file"]) for r in rows])


def test_instructed_images_follow_and_the_shuffled_baseline_does_not(scans, tmp_path):
    """Images drawn as asked (their anatomy encodes the requested age and sex) against a
    class-only model's images (random ages and sexes) paired with the same requests shuffled:
    the study's table shows r clearly above the baseline's, which is near 0."""
    from brainmr.evaluate.judges.morphometry import MEASURES
    from brainmr.evaluate.studies.following import instruction_table
    from brainmr.evaluate.studies.instructed import instruction_images

    _, model = train(scans, tmp_path)
    judges = load_attribute_judges(model)
    rng = np.random.default_rng(7)
    dirs, tables = {"instructed": {}, "brain": {}}, []
    for group in ("AD", "CN"):
        ages = rng.uniform(58, 88, 16).round()
        sexes = rng.choice(["F", "M"], 16)
        dirs["instructed"][group] = tmp_path / "instructed" / group
        tables.append(write_set(dirs["instructed"][group], "instructed", group, ages, sexes, rng))
        dirs["brain"][group] = tmp_path / "brain" / group
        other_ages, other_sexes = rng.uniform(58, 88, 16), rng.choice(["F", "M"], 16)
        tables.append(
            write_set(dirs["brain"][group], "brain", group, other_ages, other_sexes, rng, False)
        )
    scores = pd.concat(tables, ignore_index=True)[["path"]].assign(outlier=False)
    scores = scores.assign(**dict.fromkeys(MEASURES, 1.0))
    metrics = pd.DataFrame(
        [
            {"condition": c, "group": g, "cnn_interpretable": True}
            for c in dirs
            for g in ("AD", "CN")
        ]
    )
    images = instruction_images(
        condition="instructed",
        baseline="brain",
        seed=0,
        instructed_dirs=dirs["instructed"],
        baseline_dirs=dirs["brain"],
        scores=scores,
        metrics=metrics,
        judges=judges,
    )
    assert len(images) == 64 and set(images.role) == {"instructed", "shuffled baseline"}
    reals = scans[scans.split == "test"].assign(**dict.fromkeys(MEASURES, 1.0))
    reals = pd.concat(
        [reals.reset_index(drop=True), predict_attributes(judges, load_normalised(reals.path))],
        axis=1,
    )
    table = instruction_table(images, reals, n_boot=200, seed=0)
    per_seed = table[table.seed.astype(str) == "0"].set_index(["group", "role"])
    for group in ("AD", "CN"):
        followed = per_seed.loc[(group, "instructed")]
        ignored = per_seed.loc[(group, "shuffled baseline")]
        assert followed.age_r > 0.7 and followed.age_r_low > 0
        assert ignored.age_r_low < 0 < ignored.age_r_high  # not following: r ~ 0
        assert followed.sex_accuracy > 0.8 > ignored.sex_accuracy
    write_set(tmp_path / "short" / "AD", "brain", "AD", [70] * 8, ["F"] * 8, rng, False)
    with pytest.raises(ValueError, match="pair one to one"):
        instruction_images(
            condition="instructed",
            baseline="brain",
            seed=0,
            instructed_dirs=dirs["instructed"],
            baseline_dirs={"AD": tmp_path / "short" / "AD", "CN": dirs["brain"]["CN"]},
            scores=scores,
            metrics=metrics,
            judges=judges,
        )
