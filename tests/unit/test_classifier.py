"""brainmr.evaluate.judges.classifier: the AD/CN CNN's validation split, input size, training and
held-out
report (toy images, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from toy_evaluation import classifier_config, wilson

from brainmr import SLICE_SIZE, io
from brainmr.evaluate.images import load_normalised
from brainmr.evaluate.judges.classifier import (
    SliceCNN,
    extract_features,
    load_classifier,
    split_subjects,
    train_classifier,
)
from brainmr.evaluate.stats.binary import reliability_table
from brainmr.evaluate.toy import blob_image, toy_slices


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
    out = {k: tmp_path / v for k, v in dict(m="cnn.pt", j="metrics.json", p="pred.tsv").items()}
    cfg = classifier_config(
        cnn_epochs=20, cnn_batch_size=8, cnn_patience=8, n_bootstrap=500, cnn_input_size=input_size
    )
    held_out = train_classifier(
        scans=scans,
        out_model=out["m"],
        out_metrics=out["j"],
        out_predictions=out["p"],
        cfg=cfg,
        threads=1,
    )
    metrics = json.loads(out["j"].read_text())
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.9
    assert np.sum(metrics["confusion_matrix"]["matrix"]) == 24
    assert metrics["confusion_matrix"]["labels"] == ["AD", "CN"]
    predictions = io.read_tsv(out["p"])
    assert len(predictions) == 24
    correct = int(predictions["correct"].sum())
    assert metrics["accuracy"] == pytest.approx(correct / 24)
    # The accuracy's interval is Wilson's at `correct` of 24 (by its closed form, not the code
    # under test): at 24 of 24 its lower bound is 24 / (24 + z^2) = 0.860, not a bootstrap's 1.
    assert (metrics["bootstrap_accuracy_low"], metrics["bootstrap_accuracy_high"]) == pytest.approx(
        wilson(correct, 24), abs=1e-9
    )
    assert metrics["bootstrap_auc_low"] > 0.5 and metrics["brier"] < 0.15
    assert sum(b["n"] for b in metrics["reliability"]) == 24
    assert metrics["split_balance"]["checks"]  # age/sex: not available here, still reported
    # What the figures draw (brainmr.report.classifier) is the test split as written: labels
    # 1 = AD, P(AD) as predicted, and the metrics' AUC, Brier and reliability table.
    assert held_out.labels.tolist() == (predictions["group"] == "AD").astype(int).tolist()
    np.testing.assert_allclose(held_out.prob_ad, predictions["prob_AD"], rtol=1e-12)
    assert held_out.roc_auc == pytest.approx(roc_auc_score(held_out.labels, held_out.prob_ad))
    assert held_out.roc_auc == metrics["roc_auc"] and held_out.brier == metrics["brier"]
    assert held_out.reliability.equals(reliability_table(held_out.labels, held_out.prob_ad))
    model = load_classifier(out["m"], torch.device("cpu"))
    assert model.input_size == (input_size or SLICE_SIZE)  # saved with the model
    assert metrics["arch"]["input_size"] == model.input_size
    assert torch.load(out["m"], weights_only=True)["classes"] == ["CN", "AD"]  # index 1 = AD
    features = extract_features(model, load_normalised(scans["path"][:5]))
    assert features.shape == (5, 64) and np.isfinite(features).all()
