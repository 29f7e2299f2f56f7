"""brainmr.evaluate.judges.scoring: per-image scores against the toy KDE and the training slices
(nearest
neighbour inside the brain), once per set; a toy CNN's P(AD) and features in one pass; the
memorization call they feed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from toy_evaluation import classifier_config

from brainmr import io
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.classifier import (
    extract_features,
    load_classifier,
    predict_proba,
    train_classifier,
)
from brainmr.evaluate.judges.metrics import memorization_summary, memorization_threshold
from brainmr.evaluate.judges.outliers import read_scores, with_cnn
from brainmr.evaluate.judges.scoring import (
    CNN_COLUMNS,
    SCORE_COLUMNS,
    SEED_FREE_COLUMNS,
    judge_images,
    score_images,
)
from brainmr.evaluate.stats.binary import THRESHOLD
from brainmr.evaluate.toy import toy_slices


@pytest.fixture(scope="module")
def classifier_file(toy_split):
    scans = pd.concat(
        [toy_split["train"].assign(split="train"), toy_split["test"].assign(split="test")]
    )
    root = toy_split["root"]
    train_classifier(
        scans=scans,
        out_model=root / "cnn.pt",
        out_metrics=root / "cnn.json",
        out_predictions=root / "pred.tsv",
        cfg=classifier_config(cnn_epochs=3, n_bootstrap=100),
        threads=1,
    )
    return root / "cnn.pt"


def test_score_images_flags_an_exact_copy_as_memorized(
    toy_split, kde_files, classifier_file, tmp_path
):
    train = toy_split["train"]
    copied = train["path"][3]
    io.save_png_gray(tmp_path / "gen_000.png", io.load_npy(copied))
    io.save_png_gray(tmp_path / "gen_001.png", toy_slices("AD", 1, seed=9)[0])
    generated = pd.DataFrame(
        {
            "path": [str(tmp_path / "gen_000.png"), str(tmp_path / "gen_001.png")],
            "condition": "brain",
            "group": "AD",
        }
    )
    score_images(images=generated, kde_model=kde_files[0], train=train, out_tsv=tmp_path / "g.tsv")
    real = toy_split["test"].assign(condition="real")
    score_images(images=real, kde_model=kde_files[0], train=train, out_tsv=tmp_path / "r.tsv")
    for name in ("g", "r"):
        judge_images(
            scores=tmp_path / f"{name}.tsv",
            classifier=classifier_file,
            out_tsv=tmp_path / f"{name}_cnn.tsv",
            out_features=tmp_path / f"{name}_cnn.npy",
        )
    assert list(io.read_tsv(tmp_path / "g.tsv").columns) == SEED_FREE_COLUMNS
    assert list(io.read_tsv(tmp_path / "g_cnn.tsv").columns) == CNN_COLUMNS
    cnn = read_scores([tmp_path / "g_cnn.tsv", tmp_path / "r_cnn.tsv"], "CNN", CNN_COLUMNS)
    gen = with_cnn(io.read_tsv(tmp_path / "g.tsv"), cnn)
    real_scores = with_cnn(io.read_tsv(tmp_path / "r.tsv"), cnn)
    assert list(gen.columns) == SCORE_COLUMNS and len(real_scores) == 30
    assert gen["file"].tolist() == ["gen_000.png", "gen_001.png"]
    assert gen.loc[0, "nn_path"] == copied and gen.loc[0, "nn_corr"] > 0.999
    for scores in (gen, real_scores):  # the CNN's call is P(AD) at the one threshold
        assert scores["prob_AD"].between(0, 1).all()
        expected = np.where(scores["prob_AD"] >= THRESHOLD, "AD", "CN")
        assert scores["predicted"].tolist() == expected.tolist()
    threshold = memorization_threshold(real_scores["nn_corr"], 0.99)
    summary = memorization_summary(gen["nn_corr"], threshold)
    assert summary["n_memorized"] == 1 and summary["nn_corr_max"] > threshold


def test_score_images_rejects_wrong_size(toy_split, kde_files, classifier_file, tmp_path):
    io.save_png_gray(tmp_path / "small.png", np.zeros((64, 64), np.float32))
    images = pd.DataFrame({"path": [str(tmp_path / "small.png")], "condition": "x", "group": "AD"})
    with pytest.raises(ValueError, match="small.png"):
        score_images(
            images=images, kde_model=kde_files[0], train=toy_split["train"], out_tsv=tmp_path / "s"
        )


def test_one_cnn_pass_gives_the_same_p_ad_and_features_as_two(toy_split, classifier_file, tmp_path):
    """judge_images: P(AD) and the features from one forward pass equal predict_proba's and
    extract_features' (the two passes it replaces), row for row."""
    table = toy_split["test"].assign(condition="real")
    io.write_tsv(tmp_path / "s.tsv", table)
    judge_images(
        scores=tmp_path / "s.tsv",
        classifier=classifier_file,
        out_tsv=tmp_path / "c.tsv",
        out_features=tmp_path / "c.npy",
        batch_size=7,
    )
    model, images = load_classifier(classifier_file), load_normalised(table["path"])
    out = io.read_tsv(tmp_path / "c.tsv")
    np.testing.assert_allclose(out["prob_AD"], predict_proba(model, images, 7), rtol=1e-12)
    np.testing.assert_array_equal(
        io.load_npy(tmp_path / "c.npy"), extract_features(model, images, 7)
    )
    assert out["path"].tolist() == table["path"].astype(str).tolist()
    with pytest.raises(ValueError, match="no CNN output for 1 image"):
        with_cnn(
            io.read_tsv(tmp_path / "s.tsv").assign(**dict.fromkeys(SEED_FREE_COLUMNS[5:], 0)),
            out.iloc[1:],
        )


def test_one_job_judges_every_set_of_a_seed(toy_split, classifier_file, tmp_path):
    """judge_image_sets (one job per seed) writes, per set, what judge_images writes alone."""
    from brainmr.evaluate.judges.scoring import judge_image_sets

    halves = {"a": toy_split["test"].iloc[:10], "b": toy_split["test"].iloc[10:]}
    for name, part in halves.items():
        io.write_tsv(tmp_path / f"{name}.tsv", part.assign(condition="real"))
    judge_image_sets(
        scores=[tmp_path / "a.tsv", tmp_path / "b.tsv"],
        classifier=classifier_file,
        out_tables=[tmp_path / "a_cnn.tsv", tmp_path / "b_cnn.tsv"],
        out_features=[tmp_path / "a_cnn.npy", tmp_path / "b_cnn.npy"],
    )
    judge_images(
        scores=tmp_path / "b.tsv",
        classifier=classifier_file,
        out_tsv=tmp_path / "alone.tsv",
        out_features=tmp_path / "alone.npy",
    )
    pd.testing.assert_frame_equal(
        io.read_tsv(tmp_path / "b_cnn.tsv"), io.read_tsv(tmp_path / "alone.tsv")
    )
    np.testing.assert_array_equal(
        io.load_npy(tmp_path / "b_cnn.npy"), io.load_npy(tmp_path / "alone.npy")
    )
    assert len(io.read_tsv(tmp_path / "a_cnn.tsv")) == 10
    with pytest.raises(ValueError, match="2 score tables for 1 outputs"):
        judge_image_sets(
            scores=[tmp_path / "a.tsv", tmp_path / "b.tsv"],
            classifier=classifier_file,
            out_tables=[tmp_path / "x.tsv"],
            out_features=[tmp_path / "x.npy"],
        )
