"""brainmr.evaluate.studies.kde_sensitivity: the table of Table 1's counts over PCA sizes, bandwidth
rules and balances, and its default variant against the fitted model (low-rank synthetic
'images' and toy slices)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import median_abs_deviation
from toy_evaluation import kde_config

from brainmr import io
from brainmr.evaluate.judges.kde import fit_kde_model, misclassified_mask, verdict_metrics
from brainmr.evaluate.studies.kde_sensitivity import (
    SENSITIVITY_COLUMNS,
    kde_sensitivity,
    kde_sensitivity_file,
    misclassified_range,
)
from brainmr.evaluate.toy import toy_slices


def pixel_data(seed: int, n: int, shift: float, dims: int = 60) -> np.ndarray:
    """Low-rank 'images': 8 latent factors, AD shifted along the first, plus pixel noise."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(8, dims))
    latent = rng.normal(size=(n, 8)) + np.eye(8)[0] * shift
    return latent @ basis + 0.3 * rng.normal(size=(n, dims))


def sensitivity_inputs():
    train = np.concatenate([pixel_data(1, 30, 3.0), pixel_data(2, 40, 0.0)])
    train_groups = np.array(["AD"] * 30 + ["CN"] * 40)
    test = np.concatenate([pixel_data(3, 20, 3.0), pixel_data(4, 20, 0.0)])
    test_groups = np.array(["AD"] * 20 + ["CN"] * 20)
    parts, rows = [], []
    for i, (condition, group, seed) in enumerate(
        [(c, g, s) for c in ("brain", "nobrain") for g in ("AD", "CN") for s in (0, 1)]
    ):
        parts.append(pixel_data(10 + i, 12, 3.0 if group == "AD" else 0.0))
        rows += [{"condition": condition, "group": group, "seed": seed}] * 12
    return train, train_groups, test, test_groups, pd.DataFrame(rows), np.concatenate(parts)


def test_kde_sensitivity_rows_and_default_variant_match_the_fitted_model():
    train, train_groups, test, test_groups, generated, gen_pixels = sensitivity_inputs()
    cfg = kde_config(pca_components=4, kde_balance_repeats=3)
    table = kde_sensitivity(
        train, train_groups, test, test_groups, generated, gen_pixels, cfg, mad_k=5.0
    )
    assert list(table.columns) == SENSITIVITY_COLUMNS
    assert sorted(table["pca_components"].unique()) == [2, 4, 8]
    assert len(table) == 3 * 2 * 2 * 8  # PCA sizes x rules x balances x generated sets
    keys = ["condition", "group", "seed"]
    assert (table.groupby(keys)["is_default"].sum() == 1).all()
    assert (table.groupby(["pca_components", "bandwidth_rule", "balance"]).size() == 8).all()
    default = table[table["is_default"]].set_index(keys)
    assert set(default["bandwidth_rule"]) == {"shared"} and set(default["balance"]) == {"none"}
    model = fit_kde_model(train, train_groups, cfg)
    scored = model.score(gen_pixels)
    held = model.score(test)
    # Table 1's outlier rule under the default KDE: these images are left out of the counts
    best = np.maximum(held["AD"], held["CN"])
    cut = np.median(best) - 5.0 * median_abs_deviation(best, scale="normal")
    kept = np.maximum(scored["AD"], scored["CN"]) >= cut
    wrong = misclassified_mask(generated["group"].to_numpy(), scored) & kept
    expected = generated.assign(wrong=wrong, kept=kept).groupby(keys)[["wrong", "kept"]].sum()
    assert (default["misclassified"] == expected["wrong"].reindex(default.index)).all()
    assert (default["n"] == expected["kept"].reindex(default.index)).all()
    assert default["heldout_accuracy"].iloc[0] == pytest.approx(
        verdict_metrics(test_groups, held["AD"], held["CN"])["accuracy"]
    )
    assert (table["heldout_accuracy"] > 0.75).all()  # a 3-sd shift shows in every variant
    np.testing.assert_allclose(table["misclassified_fraction"], table["misclassified"] / table["n"])


def test_kde_sensitivity_caps_and_deduplicates_components():
    train, train_groups, test, test_groups, generated, gen_pixels = sensitivity_inputs()
    cfg = kde_config(pca_components=4, sensitivity_pca_components=[4, 500, 90], bandwidth=2.0)
    table = kde_sensitivity(
        train, train_groups, test, test_groups, generated, gen_pixels, cfg, mad_k=5.0
    )
    assert sorted(table["pca_components"].unique()) == [4, 60]  # capped at the 60 pixels
    # A fixed bandwidth is its own rule, beside the two searched ones.
    assert set(table["bandwidth_rule"]) == {"shared", "per_class", "fixed"}
    default = table[table["is_default"]]
    assert set(default["bandwidth_rule"]) == {"fixed"} and len(default) == 8


def test_kde_sensitivity_file_writes_the_csv(tmp_path):
    def write(images, group, prefix, **extra):
        rows = []
        for i, image in enumerate(images):
            path = tmp_path / f"{prefix}_{group}_{i}.npy"
            io.save_npy(path, image)
            rows.append({"path": str(path), "group": group} | extra)
        return rows

    train = pd.DataFrame(
        write(toy_slices("AD", 8, seed=1), "AD", "tr")
        + write(toy_slices("CN", 8, seed=2), "CN", "tr")
    )
    test = pd.DataFrame(
        write(toy_slices("AD", 4, seed=3), "AD", "te")
        + write(toy_slices("CN", 4, seed=4), "CN", "te")
    )
    generated = pd.DataFrame(
        write(toy_slices("AD", 3, seed=5), "AD", "gen", condition="brain", seed=0)
        + write(toy_slices("CN", 3, seed=6), "CN", "gen", condition="brain", seed=0)
    )
    out = tmp_path / "out" / "kde_sensitivity.csv"
    kde_sensitivity_file(
        train=train,
        test=test,
        generated=generated,
        out_csv=out,
        cfg=kde_config(pca_components=4),
        mad_k=5.0,
    )
    table = pd.read_csv(out)
    assert list(table.columns) == SENSITIVITY_COLUMNS
    assert len(table) == 3 * 2 * 2 * 2 and table["is_default"].sum() == 2
    assert not list(out.parent.glob(".*"))  # written atomically, no temporary left behind


def test_misclassified_range_pools_each_variant_over_seeds():
    """Three variants x two seeds of two sets, with known pooled fractions per variant: nobrain/CN
    5/10, 0/8, 2/8 and brain/AD 1/10, 5/10, 3/10 (pooled, not the mean of the seeds' fractions:
    brain/AD's first variant is 1/6 and 0/4, mean 0.083)."""
    counts = {
        ("nobrain", "CN"): [[(5, 2), (5, 3)], [(5, 0), (3, 0)], [(4, 1), (4, 1)]],
        ("brain", "AD"): [[(6, 1), (4, 0)], [(6, 3), (4, 2)], [(6, 2), (4, 1)]],
    }
    variants = [(5, "shared", "none"), (10, "shared", "none"), (5, "per_class", "repeat")]
    rows = [
        {"pca_components": k, "bandwidth_rule": rule, "balance": balance}
        | {"condition": condition, "group": group, "seed": seed, "n": n, "misclassified": m}
        for (condition, group), per_variant in counts.items()
        for (k, rule, balance), per_seed in zip(variants, per_variant, strict=True)
        for seed, (n, m) in enumerate(per_seed)
    ]
    ranges = misclassified_range(pd.DataFrame(rows))
    assert ranges.n_variants == 3
    assert ranges.sets[["condition", "group"]].values.tolist() == [
        ["nobrain", "CN"],
        ["brain", "AD"],
    ]  # in order of appearance
    assert ranges.sets["low"].tolist() == pytest.approx([0.0, 0.1])
    assert ranges.sets["high"].tolist() == pytest.approx([0.5, 0.5])
