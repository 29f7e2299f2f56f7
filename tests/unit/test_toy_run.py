"""The evaluation chain on the toy run (tests/toy_run.py): its tables agree with one another and
write_tables' extra metrics keep every set's row."""

from __future__ import annotations

import pandas as pd
import pytest
from toy_run import CEILING_ROWS, CONDITIONS, EXTRA_ROWS, N_REAL, PAPER_ROWS, SEEDS

from brainmr import io
from brainmr.evaluate.table1.replicates import summarise_replicates


def test_kde_sensitivity_default_rows_reproduce_table1(toy_run):
    """The sensitivity table leaves out Table 1's outliers: its default variant's counts are
    Table 1's, seed by seed and set by set."""
    sensitivity = pd.read_csv(toy_run["ev"] / "kde_sensitivity.csv")
    default = sensitivity[sensitivity["is_default"]].set_index(["condition", "group", "seed"])
    by_seed = io.read_tsv(toy_run["ev"] / "by_seed.tsv").astype({"condition": str})
    generated = by_seed[by_seed["kind"] == "generated"].set_index(["condition", "group", "seed"])
    assert len(default) == len(generated) == len(CONDITIONS) * 2 * len(SEEDS)
    joined = generated[["n", "misclassified"]].join(default[["n", "misclassified"]], rsuffix="_s")
    assert (joined["n"] == joined["n_s"]).all()
    assert (joined["misclassified"] == joined["misclassified_s"]).all()
    assert (generated["n_outliers"] > 0).any()  # the toy run has an outlier to leave out


def test_metrics_flag_the_copied_train_slice(toy_run):
    metrics = pd.read_csv(toy_run["metrics"])
    first = metrics[metrics["seed"] == 0].set_index("set")
    assert first.index.tolist() == PAPER_ROWS + EXTRA_ROWS + CEILING_ROWS + [
        "held-out real AD",
        "held-out real CN",
    ]
    assert first.loc["CN", "n_memorized"] >= 1 and first.loc["CN", "nn_corr_max"] > 0.999
    assert first.loc["AD (third)", "nn_corr_max"] < 0.999
    for column in ("frechet_distance", "kid", "precision", "recall", "density", "coverage"):
        assert metrics[column].notna().all(), column
    assert first.loc["AD (no brain)", "n_kept"] == first.loc["AD (no brain)", "n"] - 1  # noise
    # size-matched to the held-out reals of a class: all of a smaller set, N_REAL of the reals
    assert (metrics["n_matched"] == metrics["n_kept"].clip(upper=N_REAL)).all()
    assert (
        first.loc["AD (no brain)", "n_matched"] == 5
        and first.loc["held-out real AD", "n_matched"] == N_REAL
    )


def test_missing_generated_set_is_an_error(toy_run, tmp_path):
    with pytest.raises(ValueError, match="fourth/AD"):
        summarise_replicates(
            scores=toy_run["scores"][:1],
            references=toy_run["root"] / "references.tsv",
            set_metrics=toy_run["set_metrics"][:1],
            cnn_metrics=toy_run["cnn"][:1],
            seeds=[0],
            conditions=[*CONDITIONS, "fourth"],
            n_bootstrap=100,
            out_by_seed=tmp_path / "a.tsv",
            out_summary=tmp_path / "b.tsv",
            out_comparisons=tmp_path / "c.tsv",
            out_verdict=tmp_path / "d.json",
            reals=toy_run["root"] / "morphometry_reals.tsv",
            out_morphometry=tmp_path / "e.tsv",
            out_findings=tmp_path / "f.json",
        )
