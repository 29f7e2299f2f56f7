"""brainmr.evaluate's chain (outliers, set metrics, summary across seeds) and brainmr.report's
tables and figures on toy data with two replicate seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainmr import io
from brainmr.config import stage_config
from brainmr.evaluate.classifier import train_classifier
from brainmr.evaluate.config import ClassifierConfig, JudgeConfig, KdeConfig
from brainmr.evaluate.kde import fit_kde, kde_sensitivity_file
from brainmr.evaluate.outliers import flag_outlier_files
from brainmr.evaluate.replicates import summarise_replicates
from brainmr.evaluate.scoring import real_morphometry_file, score_images
from brainmr.evaluate.sets import set_metrics_file
from brainmr.evaluate.toy import toy_slices
from brainmr.report import make_figures, write_tables
from brainmr.report.tables import COLUMNS, PAPER_TABLE1

CONDITIONS = {
    "brain": {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain, ADNI2", "label": ""},
    "nobrain": {"AD": "AD, ADNI2", "CN": "CN, ADNI2", "label": " (no brain)"},
    "third": {"AD": "AD, a T1 slice", "CN": "CN, a T1 slice"},  # no label: named after the key
}
PAPER_ROWS = ["AD", "CN", "AD (no brain)", "CN (no brain)"]
EXTRA_ROWS = ["AD (third)", "CN (third)"]
CEILING = "ceiling_vae32"
CEILING_ROWS = [f"held-out real {g} through the generator (vae32)" for g in ("AD", "CN")]
TAIL_ROWS = ["outlier", *CEILING_ROWS, "held-out real AD", "held-out real CN"]
N_PER_SET = 6
SEEDS = [0, 1]


def write_npys(folder, images, group, prefix) -> pd.DataFrame:
    rows = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}_{group}_{i:03d}.npy"
        io.save_npy(path, image)
        rows.append({"subject": f"{prefix}{group}{i:03d}", "group": group, "path": str(path)})
    return pd.DataFrame(rows)


def write_generated(root, train, seed) -> dict:
    """Toy image sets of one seed: a noise image in nobrain/AD, an exact train copy in brain/CN."""
    rng = np.random.default_rng(seed)
    tables = {}
    for k, condition in enumerate(CONDITIONS):
        for group in ("AD", "CN"):
            folder = root / f"seed{seed}" / f"{condition}_{group}"
            images = toy_slices(group, N_PER_SET, seed=100 * seed + 10 + 2 * k + (group == "CN"))
            if (condition, group) == ("nobrain", "AD"):
                images[2] = rng.uniform(0, 1, images[2].shape)
            if (condition, group) == ("brain", "CN"):
                images[0] = io.load_npy(train["path"].iloc[-1])
            paths = []
            for i, image in enumerate(images):
                paths.append(folder / f"{condition}_{group}_{i:03d}.png")
                io.save_png_gray(paths[-1], image)
            tables[(condition, group)] = pd.DataFrame(
                {"path": map(str, paths), "condition": condition, "group": group, "seed": seed}
            )
    return tables


def write_ceiling(root, test) -> dict:
    """The held-out reals through a stand-in bottleneck (down to 32 px and back), written as a
    ceiling set is: the same images for every seed."""
    from brainmr.diffusion.common import resize_image

    tables = {}
    for group in ("AD", "CN"):
        folder = root / "ceiling" / group
        paths = []
        for i, path in enumerate(test.loc[test["group"] == group, "path"]):
            small = resize_image(io.load_npy(path).astype(np.float32), 32)
            paths.append(folder / f"{CEILING}_{group}_{i:03d}.png")
            io.save_png_gray(paths[-1], resize_image(small, 160).clip(0, 1))
        tables[(CEILING, group)] = pd.DataFrame(
            {"path": map(str, paths), "condition": CEILING, "group": group}
        )
    return tables


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A toy run of the whole evaluation and report chain, two replicate seeds."""
    root = tmp_path_factory.mktemp("run")
    kde_cfg = stage_config(KdeConfig, "evaluate", pca_components=10)
    judge = stage_config(JudgeConfig, "evaluate", matched_draws=5)
    train = pd.concat(
        [
            write_npys(root, toy_slices(g, 16, seed=s), g, "train")
            for g, s in (("AD", 1), ("CN", 2))
        ],
        ignore_index=True,
    )
    test = pd.concat(
        [write_npys(root, toy_slices(g, 10, seed=s), g, "test") for g, s in (("AD", 3), ("CN", 4))],
        ignore_index=True,
    )
    fit_kde(train=train, out_model=root / "kde.joblib", out_json=root / "kde.json", cfg=kde_cfg)
    scans = pd.concat([train.assign(split="train"), test.assign(split="test")])
    scans = scans.assign(age=70.0, sex="F")
    real_morphometry_file(slices=scans, out_tsv=root / "morphometry_reals.tsv")
    ceiling = write_ceiling(root, test)
    files = {"scores": [], "set_metrics": [], "cnn": [], "generated": []}
    for seed in SEEDS:
        d = root / f"seed{seed}"
        train_classifier(
            scans=scans,
            out_model=d / "cnn.pt",
            out_metrics=d / "cnn.json",
            out_roc=d / "roc.png",
            out_reliability=d / "reliability.png",
            out_predictions=d / "pred.tsv",
            cfg=stage_config(
                ClassifierConfig, "evaluate", cnn_epochs=3, seed=seed, n_bootstrap=200
            ),
        )
        common = dict(kde_model=root / "kde.joblib", classifier=d / "cnn.pt", train=train)
        tables = write_generated(root, train, seed)
        generated = []
        for (condition, group), table in (tables | ceiling).items():
            generated.append(d / f"scores_{condition}_{group}.tsv")
            score_images(images=table, out_tsv=generated[-1], **common)
        score_images(images=test.assign(condition="real"), out_tsv=d / "real.tsv", **common)
        flag_outlier_files(
            generated=generated, real=d / "real.tsv", out_tsv=d / "scores.tsv", mad_k=5.0
        )
        set_metrics_file(
            scores=d / "scores.tsv",
            classifier=d / "cnn.pt",
            classifier_metrics=d / "cnn.json",
            train=train,
            out_tsv=d / "set_metrics.tsv",
            cfg=judge,
        )
        files["scores"].append(d / "scores.tsv")
        files["set_metrics"].append(d / "set_metrics.tsv")
        files["cnn"].append(d / "cnn.json")
        files["generated"].append(pd.concat(tables.values(), ignore_index=True))
    ev = root / "evaluate"
    summarise_replicates(
        scores=files["scores"],
        set_metrics=files["set_metrics"],
        cnn_metrics=files["cnn"],
        seeds=SEEDS,
        conditions=list(CONDITIONS),
        n_bootstrap=200,
        out_by_seed=ev / "by_seed.tsv",
        out_summary=ev / "summary.tsv",
        out_comparisons=ev / "comparisons.tsv",
        out_verdict=ev / "verdict.json",
        reals=root / "morphometry_reals.tsv",
        out_morphometry=ev / "morphometry.tsv",
        out_findings=ev / "findings.json",
    )
    kde_sensitivity_file(
        train=train,
        test=test,
        generated=pd.concat(files["generated"], ignore_index=True),
        out_csv=ev / "kde_sensitivity.csv",
        cfg=kde_cfg,
        mad_k=5.0,
    )
    out = {
        name: root / "results" / name
        for name in ("csv", "md", "vs_paper", "summary_csv", "summary_md", "metrics")
    }
    write_tables(
        inputs={
            "by_seed": ev / "by_seed.tsv",
            "summary": ev / "summary.tsv",
            "comparisons": ev / "comparisons.tsv",
            "verdict": ev / "verdict.json",
            "set_metrics": files["set_metrics"],
            "sensitivity": ev / "kde_sensitivity.csv",
            "kde": root / "kde.json",
            "findings": ev / "findings.json",
        },
        outputs=out,
        conditions=CONDITIONS,
        run_label="toy run",
        synthetic=True,
        provenance={"base model": "toy", "replicate seeds": SEEDS},
        mad_k=5.0,
    )
    return {"root": root, "train": train, "ev": ev} | files | out


def test_table1_has_the_papers_columns_and_rows_plus_a_third_condition(run):
    table = pd.read_csv(run["csv"])
    assert list(table.columns[: len(COLUMNS)]) == list(PAPER_TABLE1.columns[: len(COLUMNS)])
    assert table["generated set"].tolist() == PAPER_ROWS + EXTRA_ROWS + TAIL_ROWS
    outlier = table.set_index("generated set").loc["outlier"]
    assert outlier["n"] >= 1 and outlier["predicted AD"] == "—"
    counts = table.set_index("generated set").loc[PAPER_ROWS + EXTRA_ROWS]
    per_set = counts["predicted AD"].astype(int) + counts["predicted CN"].astype(int)
    assert (per_set == counts["n"]).all()
    assert (counts["n"] + counts["outliers"].astype(int) == N_PER_SET).all()
    assert set(counts["CNN counts interpretable"]) <= {"yes", "no"}


def test_table1_numbers_trace_back_to_the_seed0_scores(run):
    table = pd.read_csv(run["csv"]).set_index("generated set")
    scores = io.read_tsv(run["scores"][0])
    noise = scores[scores["path"].str.endswith("seed0/nobrain_AD/nobrain_AD_002.png")]
    assert noise["outlier"].all()  # the noise image fails the outlier rule
    part = scores[(scores["condition"] == "nobrain") & (scores["group"] == "AD")]
    kept = part[~part["outlier"]]
    row = table.loc["AD (no brain)"]
    assert float(row["AD log-lik"]) == pytest.approx(kept["loglik_AD"].mean(), abs=1e-4)
    assert float(row["CN log-lik"]) == pytest.approx(kept["loglik_CN"].mean(), abs=1e-4)
    assert int(row["misclassified (likelihood)"]) == int(
        (kept["loglik_CN"] >= kept["loglik_AD"]).sum()  # the verdict's tie rule: a tie is CN
    )
    assert int(row["predicted AD"]) == int((kept["predicted"] == "AD").sum())
    real = scores[(scores["condition"] == "real") & (scores["group"] == "CN")]
    assert float(table.loc["held-out real CN", "CN log-lik"]) == pytest.approx(
        real.loc[~real["outlier"], "loglik_CN"].mean(), abs=1e-4
    )
    outliers = scores[scores["outlier"] & (scores["condition"] != "real")]
    assert float(table.loc["outlier", "AD log-lik"]) == pytest.approx(
        outliers["loglik_AD"].mean(), abs=1e-4
    )


def test_summary_headline_is_seed_level_and_pooled_is_labelled(run):
    by_seed = io.read_tsv(run["ev"] / "by_seed.tsv")
    summary = pd.read_csv(run["summary_csv"]).set_index("set")
    brain_ad = by_seed[(by_seed["condition"] == "brain") & (by_seed["group"] == "AD")]
    assert sorted(brain_ad["seed"]) == SEEDS
    assert summary.loc["AD", "n"] == brain_ad["n"].sum()
    assert summary.loc["AD", "predicted_AD"] == brain_ad["predicted_AD"].sum()
    assert summary.loc["AD", "loglik_AD_mean"] == pytest.approx(brain_ad["loglik_AD"].mean())
    fractions = brain_ad["predicted_AD"] / brain_ad["n"]
    assert summary.loc["AD", "predicted_AD_seed_mean"] == pytest.approx(fractions.mean())
    low, high = summary.loc["AD", ["predicted_AD_pooled_low", "predicted_AD_pooled_high"]]
    assert 0 <= low <= summary.loc["AD", "predicted_AD_pooled"] <= high <= 1
    # the held-out reals: the same images in every seed, counted once
    real = by_seed[(by_seed["condition"] == "real") & (by_seed["group"] == "CN")]
    assert summary.loc["held-out real CN", "n"] == real["n"].iloc[0]
    md = run["summary_md"].read_text(encoding="utf-8")
    assert "paired t" in md and "images independent" in md and "**SYNTHETIC DEMO DATA" in md
    assert "likelihood verdict" in md and "Sensitivity" in md and "detectable" in md


def test_ceiling_rows_are_scored_by_every_judge_and_said_in_words(run):
    table = pd.read_csv(run["csv"]).set_index("generated set")
    for label in CEILING_ROWS:
        row = table.loc[label]
        assert row["CNN counts interpretable"] in ("yes", "no")
        assert np.isfinite(float(row["AD log-lik"])) and float(row["ventricle area (mm²)"]) > 0
    findings = io.read_json(run["ev"] / "findings.json")
    assert [r["ceiling"] for r in findings["ceiling"]] == [CEILING, CEILING]
    assert {r["condition"] for r in findings["separation"]} == set(CONDITIONS)
    md = run["md"].read_text(encoding="utf-8")
    assert "## What this table found" in md and "bottleneck alone" in md
    assert "of the real difference reproduced" in md


def test_kde_sensitivity_default_rows_reproduce_table1(run):
    """The sensitivity table leaves out Table 1's outliers: its default variant's counts are
    Table 1's, seed by seed and set by set."""
    sensitivity = pd.read_csv(run["ev"] / "kde_sensitivity.csv")
    default = sensitivity[sensitivity["is_default"]].set_index(["condition", "group", "seed"])
    by_seed = io.read_tsv(run["ev"] / "by_seed.tsv").astype({"condition": str})
    generated = by_seed[by_seed["kind"] == "generated"].set_index(["condition", "group", "seed"])
    assert len(default) == len(generated) == len(CONDITIONS) * 2 * len(SEEDS)
    joined = generated[["n", "misclassified"]].join(default[["n", "misclassified"]], rsuffix="_s")
    assert (joined["n"] == joined["n_s"]).all()
    assert (joined["misclassified"] == joined["misclassified_s"]).all()
    assert (generated["n_outliers"] > 0).any()  # the toy run has an outlier to leave out


def test_markdown_records_label_warning_and_choices(run):
    md = run["md"].read_text(encoding="utf-8")
    assert "toy run" in md and "**SYNTHETIC DEMO DATA" in md
    for needle in (
        "KDE space",
        "bandwidth rule shared",
        "threshold =",
        "held-out real slices",
        "bootstrap 95% CI",
        "Brier",
        "likelihood verdict",
        "across PCA components",
    ):
        assert needle in md, needle
    vs = run["vs_paper"].read_text()
    assert "-423.95" in vs and "base model: toy" in vs and "AD (third)" in vs
    assert "| AD (no brain) |" in vs


def test_metrics_flag_the_copied_train_slice(run):
    metrics = pd.read_csv(run["metrics"])
    first = metrics[metrics["seed"] == 0].set_index("set")
    assert first.index.tolist() == PAPER_ROWS + EXTRA_ROWS + CEILING_ROWS + [
        "held-out real AD",
        "held-out real CN",
    ]
    assert first.loc["CN", "n_memorized"] >= 1 and first.loc["CN", "nn_corr_max"] > 0.999
    assert first.loc["AD (third)", "nn_corr_max"] < 0.999
    for column in ("frechet_distance", "kid", "precision", "recall", "density", "coverage"):
        assert metrics[column].notna().all(), column
    assert metrics["coverage"].between(0, 1).all()
    assert (metrics["n_matched"] <= 10).all()  # size-matched to the 10 held-out reals per class


def test_missing_generated_set_is_an_error(run, tmp_path):
    with pytest.raises(ValueError, match="fourth/AD"):
        summarise_replicates(
            scores=run["scores"][:1],
            set_metrics=run["set_metrics"][:1],
            cnn_metrics=run["cnn"][:1],
            seeds=[0],
            conditions=[*CONDITIONS, "fourth"],
            n_bootstrap=100,
            out_by_seed=tmp_path / "a.tsv",
            out_summary=tmp_path / "b.tsv",
            out_comparisons=tmp_path / "c.tsv",
            out_verdict=tmp_path / "d.json",
            reals=run["root"] / "morphometry_reals.tsv",
            out_morphometry=tmp_path / "e.tsv",
            out_findings=tmp_path / "f.json",
        )


def test_make_figures_writes_four_pngs(run):
    out = {n: run["root"] / "figures" / f"{n}.png" for n in ("figure1", "forest", "hist", "memo")}
    make_figures(
        scores=run["scores"][0],
        set_metrics=run["set_metrics"][0],
        summary=run["ev"] / "summary.tsv",
        conditions=CONDITIONS,
        run_label="toy run",
        synthetic=True,
        out_figure1=out["figure1"],
        out_forest=out["forest"],
        out_histograms=out["hist"],
        out_memorization=out["memo"],
    )
    for path in out.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
