"""brainmr.evaluate: KDE, outlier rule, CNN, per-image scores, extra metrics (toy data, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from sklearn.model_selection import GridSearchCV, LeaveOneOut
from sklearn.neighbors import KernelDensity

from brainmr import SLICE_SIZE, io
from brainmr.config import stage_config
from brainmr.evaluate.classifier import (
    SliceCNN,
    extract_features,
    load_classifier,
    split_subjects,
    train_classifier,
)
from brainmr.evaluate.config import ClassifierConfig, KdeConfig
from brainmr.evaluate.images import flatten, load_normalised, normalise_intensity
from brainmr.evaluate.kde import fit_kde, fit_kde_model, load_kde
from brainmr.evaluate.metrics import (
    frechet_distance,
    memorization_summary,
    memorization_threshold,
    prdc,
)
from brainmr.evaluate.outliers import best_loglik, outlier_threshold
from brainmr.evaluate.scoring import SCORE_COLUMNS, score_images
from brainmr.evaluate.toy import blob_image, toy_slices


def config(**overrides) -> KdeConfig:
    return stage_config(KdeConfig, "evaluate", **overrides)


def classifier_config(**overrides) -> ClassifierConfig:
    return stage_config(ClassifierConfig, "evaluate", **overrides)


def write_slices(folder, images, group, prefix) -> pd.DataFrame:
    rows = []
    for i, image in enumerate(images):
        subject = f"{prefix}_{group}_{i:03d}"
        path = folder / f"{subject}.npy"
        io.save_npy(path, image)
        rows.append({"subject": subject, "group": group, "path": str(path)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Toy train (20 per class) and held-out (15 per class) slices on disk."""
    root = tmp_path_factory.mktemp("toy")
    train = pd.concat(
        [
            write_slices(root, toy_slices("AD", 20, seed=1), "AD", "train"),
            write_slices(root, toy_slices("CN", 20, seed=2), "CN", "train"),
        ],
        ignore_index=True,
    )
    test = pd.concat(
        [
            write_slices(root, toy_slices("AD", 15, seed=3), "AD", "test"),
            write_slices(root, toy_slices("CN", 15, seed=4), "CN", "test"),
        ],
        ignore_index=True,
    )
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="module")
def kde_files(toy):
    out_model, out_json = toy["root"] / "kde.joblib", toy["root"] / "kde.json"
    fit_kde(train=toy["train"], out_model=out_model, out_json=out_json, cfg=config())
    return out_model, out_json


# ---------------------------------------------------------------- KDE


def test_kde_matches_direct_gaussian_logsumexp():
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(30, 50))
    groups = np.array(["AD"] * 14 + ["CN"] * 16)
    model = fit_kde_model(pixels, groups, config(pca_components=4, bandwidth=1.7))
    query = rng.normal(size=(7, 50))
    scores = model.score(query)
    z_train, z_query = model.project(pixels), model.project(query)
    assert z_train.shape == (30, 5)  # 4 PCA scores + the residual norm
    for group in ("AD", "CN"):
        data = z_train[groups == group]
        d = data.shape[1]
        h = 1.7
        log_kernel = -cdist(z_query, data, "sqeuclidean") / (2 * h * h)
        expected = (
            logsumexp(log_kernel, axis=1) - np.log(len(data)) - d / 2 * np.log(2 * np.pi * h * h)
        )
        np.testing.assert_allclose(scores[group], expected, rtol=1e-8, atol=1e-8)


def test_kde_cross_validated_bandwidth_matches_sklearn_leave_one_out():
    rng = np.random.default_rng(1)
    pixels = np.concatenate([rng.normal(0, 1, (12, 40)), rng.normal(0.5, 2, (15, 40))])
    groups = np.array(["AD"] * 12 + ["CN"] * 15)
    for rule in ("shared", "per_class"):
        model = fit_kde_model(pixels, groups, config(pca_components=3, bandwidth_rule=rule))
        z = model.project(pixels)
        for group in ("AD", "CN"):
            # shared: one search on the pooled coordinates; per_class: on the class's own.
            zg = z if rule == "shared" else z[groups == group]
            h = model.bandwidths[group]
            # sklearn's own leave-one-out score prefers the continuous optimum to its neighbours.
            grid = {"bandwidth": [h * f for f in (0.8, 0.9, 0.97, 1.0, 1.03, 1.1, 1.25)]}
            search = GridSearchCV(KernelDensity(kernel="gaussian"), grid, cv=LeaveOneOut()).fit(zg)
            assert search.best_params_["bandwidth"] == pytest.approx(h)
        if rule == "shared":
            assert model.bandwidths["AD"] == model.bandwidths["CN"]


def test_kde_ranks_own_class_higher_and_records_its_choices(toy, kde_files):
    out_model, out_json = kde_files
    model = load_kde(out_model)
    summary = json.loads(out_json.read_text())
    assert summary["components"] == 20 and summary["n_per_class"] == {"AD": 20, "CN": 20}
    assert set(summary["bandwidths"]) == {"AD", "CN"}
    assert summary["bandwidth_rule"] == "shared" and summary["balance"] == "none"
    assert summary["bandwidths"]["AD"] == summary["bandwidths"]["CN"]
    assert summary["bandwidth_bounds"] == config().bandwidth_bounds
    assert summary["at_bound"] is False and "bandwidth_grid" not in summary
    test = toy["test"]
    scores = model.score(flatten(load_normalised(test["path"])))
    own = np.where(test["group"] == "AD", scores["AD"], scores["CN"])
    other = np.where(test["group"] == "AD", scores["CN"], scores["AD"])
    assert np.mean(own > other) > 0.85


def test_pca_components_capped_by_samples():
    rng = np.random.default_rng(2)
    model = fit_kde_model(rng.normal(size=(6, 30)), np.array(["AD", "CN"] * 3), config())
    assert model.pca.n_components_ == 5


def test_fit_kde_rejects_a_single_class(toy, tmp_path):
    only_ad = toy["train"][toy["train"]["group"] == "AD"]
    with pytest.raises(ValueError, match="CN"):
        fit_kde(train=only_ad, out_model=tmp_path / "m", out_json=tmp_path / "j", cfg=config())


def test_intensity_normalisation_removes_global_brightness():
    image = toy_slices("CN", 1, seed=5)[0]
    np.testing.assert_allclose(
        normalise_intensity(0.6 * image), normalise_intensity(image), atol=1e-5
    )
    assert normalise_intensity(np.zeros((160, 160), np.float32)).max() == 0


# ---------------------------------------------------------------- outliers


def test_outlier_rule_flags_noise_and_blank_but_few_reals(toy, kde_files):
    model = load_kde(kde_files[0])
    real = pd.DataFrame(model.score(flatten(load_normalised(toy["test"]["path"]))))
    real.columns = ["loglik_" + c for c in real.columns]
    threshold = outlier_threshold(best_loglik(real), mad_k=5.0)
    rng = np.random.default_rng(0)
    odd = np.stack(
        [
            rng.uniform(0, 1, (160, 160)),
            rng.normal(0.5, 0.2, (160, 160)).clip(0, 1),
            np.zeros((160, 160)),
        ]
    ).astype(np.float32)
    odd_scores = pd.DataFrame(model.score(flatten(np.stack([normalise_intensity(i) for i in odd]))))
    odd_scores.columns = ["loglik_" + c for c in odd_scores.columns]
    assert (best_loglik(odd_scores) < threshold).all()
    assert (best_loglik(real) < threshold).mean() <= 0.1
    # a tight rule (k = 0: the median) flags about half the reals
    median_rule = outlier_threshold(best_loglik(real), mad_k=1e-9)
    assert 0.3 < (best_loglik(real) < median_rule).mean() <= 0.5


# ---------------------------------------------------------------- CNN


def test_validation_split_is_by_subject_and_stratified():
    table = pd.DataFrame(
        {
            "subject": [f"s{i // 2}" for i in range(20)],  # two slices per subject
            "group": ["AD"] * 8 + ["CN"] * 12,
        }
    )
    is_val = split_subjects(table, 0.25, seed=0)
    val_subjects = set(table.loc[is_val, "subject"])
    assert not val_subjects & set(table.loc[~is_val, "subject"])
    assert set(table.loc[is_val, "group"]) == {"AD", "CN"}


def test_cnn_reads_images_at_its_input_size():
    """A model of input size 64 sees a 160-px image exactly as its antialiased 64-px version; the
    default model (the slice size) sees the detail that resize removes."""
    torch.manual_seed(0)
    image = torch.from_numpy(toy_slices("AD", 1, seed=3)[0])[None, None]
    small = torch.nn.functional.interpolate(
        image, size=(64, 64), mode="bilinear", antialias=True, align_corners=False
    )
    low = SliceCNN(channels=[8, 16], dropout=0.0, input_size=64).eval()
    with torch.no_grad():
        assert torch.allclose(low.embed(image), low.embed(small), atol=1e-6)
        full = SliceCNN(channels=[8, 16], dropout=0.0).eval()
        assert full.input_size == SLICE_SIZE
        sharp, blurred = (
            full.embed(image),
            full.embed(
                torch.nn.functional.interpolate(small, size=image.shape[-2:], mode="bilinear")
            ),
        )
        assert not torch.allclose(sharp, blurred, atol=1e-3)
    with pytest.raises(ValueError, match="cnn_input_size 16: .* at least 32 px"):
        SliceCNN(channels=[16, 32, 64, 64], dropout=0.0, input_size=16)


@pytest.mark.parametrize("input_size", [None, 64])
def test_cnn_learns_a_separable_toy_task(tmp_path, input_size):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(64):
        bright = i % 2 == 0
        split = "train" if i < 40 else "test"
        path = tmp_path / f"blob_{i:03d}.npy"
        io.save_npy(path, blob_image(bright, rng))
        rows.append(
            {
                "subject": f"s{i:03d}",
                "group": "AD" if bright else "CN",
                "split": split,
                "path": str(path),
            }
        )
    scans = pd.DataFrame(rows)
    out = {
        k: tmp_path / v
        for k, v in dict(
            m="cnn.pt", j="metrics.json", r="roc.png", c="rel.png", p="pred.tsv"
        ).items()
    }
    cfg = classifier_config(
        cnn_epochs=20, cnn_batch_size=8, cnn_patience=8, n_bootstrap=500, cnn_input_size=input_size
    )
    train_classifier(
        scans=scans,
        out_model=out["m"],
        out_metrics=out["j"],
        out_roc=out["r"],
        out_reliability=out["c"],
        out_predictions=out["p"],
        cfg=cfg,
        threads=1,
    )
    metrics = json.loads(out["j"].read_text())
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.9
    assert np.sum(metrics["confusion_matrix"]["matrix"]) == 24
    predictions = io.read_tsv(out["p"])
    assert len(predictions) == 24
    assert predictions["correct"].mean() == pytest.approx(metrics["accuracy"])
    assert out["r"].stat().st_size > 0 and out["c"].stat().st_size > 0
    # Wilson's accuracy interval holds the estimate and stays open below it even at 24 of 24
    # (it is >= 0.86 there); Brier of a good classifier is small
    assert (
        metrics["bootstrap_accuracy_low"]
        < metrics["accuracy"]
        <= metrics["bootstrap_accuracy_high"]
    )
    assert metrics["bootstrap_auc_low"] > 0.5 and metrics["brier"] < 0.15
    assert sum(b["n"] for b in metrics["reliability"]) == 24
    assert metrics["split_balance"]["checks"]  # age/sex: not available here, still reported
    model = load_classifier(out["m"], torch.device("cpu"))
    assert model.input_size == (input_size or SLICE_SIZE)  # saved with the model
    assert metrics["arch"]["input_size"] == model.input_size
    features = extract_features(model, load_normalised(scans["path"][:5]))
    assert features.shape == (5, 64) and np.isfinite(features).all()


# ---------------------------------------------------------------- per-image scores


@pytest.fixture(scope="module")
def classifier_file(toy):
    scans = pd.concat([toy["train"].assign(split="train"), toy["test"].assign(split="test")])
    root = toy["root"]
    train_classifier(
        scans=scans,
        out_model=root / "cnn.pt",
        out_metrics=root / "cnn.json",
        out_roc=root / "roc.png",
        out_reliability=root / "rel.png",
        out_predictions=root / "pred.tsv",
        cfg=classifier_config(cnn_epochs=3, n_bootstrap=100),
        threads=1,
    )
    return root / "cnn.pt"


def test_score_images_flags_an_exact_copy_as_memorized(toy, kde_files, classifier_file, tmp_path):
    train = toy["train"]
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
    score_images(
        images=generated,
        kde_model=kde_files[0],
        classifier=classifier_file,
        train=train,
        out_tsv=tmp_path / "gen.tsv",
    )
    real = toy["test"].assign(condition="real")
    score_images(
        images=real,
        kde_model=kde_files[0],
        classifier=classifier_file,
        train=train,
        out_tsv=tmp_path / "real.tsv",
    )
    gen, real_scores = io.read_tsv(tmp_path / "gen.tsv"), io.read_tsv(tmp_path / "real.tsv")
    assert list(gen.columns) == SCORE_COLUMNS and len(real_scores) == 30
    assert gen["file"].tolist() == ["gen_000.png", "gen_001.png"]
    assert gen.loc[0, "nn_path"] == copied and gen.loc[0, "nn_corr"] > 0.999
    assert set(gen["predicted"]) <= {"AD", "CN"} and gen["prob_AD"].between(0, 1).all()
    threshold = memorization_threshold(real_scores["nn_corr"], 0.99)
    summary = memorization_summary(gen["nn_corr"], threshold)
    assert summary["n_memorized"] == 1 and summary["nn_corr_max"] > threshold


def test_score_images_rejects_wrong_size(toy, kde_files, classifier_file, tmp_path):
    io.save_png_gray(tmp_path / "small.png", np.zeros((64, 64), np.float32))
    images = pd.DataFrame({"path": [str(tmp_path / "small.png")], "condition": "x", "group": "AD"})
    with pytest.raises(ValueError, match="small.png"):
        score_images(
            images=images,
            kde_model=kde_files[0],
            classifier=classifier_file,
            train=toy["train"],
            out_tsv=tmp_path / "s.tsv",
        )


# ---------------------------------------------------------------- fidelity / diversity


def test_prdc_and_frechet_identical_sets():
    x = np.random.default_rng(0).normal(size=(60, 8))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    scores = prdc(x, x.copy(), k=5)
    assert scores["precision"] == 1 and scores["recall"] == 1 and scores["coverage"] == 1


def test_prdc_and_frechet_disjoint_and_shifted_sets():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(80, 6)), rng.normal(size=(80, 6)) + 50
    scores = prdc(real, fake, k=5)
    assert scores["precision"] == 0 and scores["recall"] == 0 and scores["coverage"] == 0
    assert scores["density"] == 0
    # same samples shifted: FD is exactly the squared shift
    shift = np.array([3.0, 0, 0, 4.0, 0, 0])
    assert frechet_distance(real, real + shift) == pytest.approx(25.0)


def test_prdc_caps_k_for_small_sets():
    rng = np.random.default_rng(2)
    scores = prdc(rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), k=5)
    assert scores["k"] == 2 and np.isfinite(scores["recall"])
    assert np.isnan(prdc(rng.normal(size=(1, 4)), rng.normal(size=(5, 4)), k=5)["precision"])
    assert np.isnan(frechet_distance(rng.normal(size=(1, 4)), rng.normal(size=(5, 4))))
