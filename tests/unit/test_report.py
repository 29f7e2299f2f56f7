"""brainmr.report: Table 1, its comparison with the paper, metrics.csv and figures (toy data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainmr import io
from brainmr.config import stage_config
from brainmr.evaluate import EvaluateConfig, fit_kde, score_images, train_classifier
from brainmr.evaluate.toy import toy_slices
from brainmr.report import build_table1, make_figures
from brainmr.report.table1 import COLUMNS, PAPER_TABLE1

CONDITIONS = {
    "brain": {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain, ADNI2", "label": ""},
    "nobrain": {"AD": "AD, ADNI2", "CN": "CN, ADNI2", "label": " (no brain)"},
    "third": {"AD": "AD, a T1 slice", "CN": "CN, a T1 slice"},  # no label: named after the key
}
PAPER_ROWS = ["AD", "CN", "AD (no brain)", "CN (no brain)"]
EXTRA_ROWS = ["AD (third)", "CN (third)"]
TAIL_ROWS = ["outlier", "held-out real AD", "held-out real CN"]
N_PER_SET = 6


def config(**overrides) -> EvaluateConfig:
    return stage_config(EvaluateConfig, "evaluate", **overrides)


def write_npys(folder, images, group, prefix) -> pd.DataFrame:
    rows = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}_{group}_{i:03d}.npy"
        io.save_npy(path, image)
        rows.append({"subject": f"{prefix}{group}{i:03d}", "group": group, "path": str(path)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A toy run: train/test slices, KDE, a briefly trained CNN, score TSVs of three conditions
    (one noise image in nobrain/AD, one exact train copy in brain/CN) and of held-out reals."""
    root = tmp_path_factory.mktemp("run")
    cfg = config(cnn_epochs=3, pca_components=10)
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
    fit_kde(train=train, out_model=root / "kde.joblib", out_json=root / "kde.json", cfg=cfg)
    scans = pd.concat([train.assign(split="train"), test.assign(split="test")])
    train_classifier(
        scans=scans,
        out_model=root / "cnn.pt",
        out_metrics=root / "cnn.json",
        out_roc=root / "roc.png",
        out_predictions=root / "pred.tsv",
        cfg=cfg,
    )
    common = dict(kde_model=root / "kde.joblib", classifier=root / "cnn.pt", train=train, cfg=cfg)
    generated = []
    rng = np.random.default_rng(0)
    for k, condition in enumerate(CONDITIONS):
        for group in ("AD", "CN"):
            folder = root / f"{condition}_{group}"
            images = toy_slices(group, N_PER_SET, seed=10 + 2 * k + (group == "CN"))
            if (condition, group) == ("nobrain", "AD"):
                images[2] = rng.uniform(0, 1, images[2].shape)
            if (condition, group) == ("brain", "CN"):
                images[0] = io.load_npy(train["path"].iloc[-1])
            paths = []
            for i, image in enumerate(images):
                paths.append(folder / f"{condition}_{group}_{i:03d}.png")
                io.save_png_gray(paths[-1], image)
            table = pd.DataFrame({"path": map(str, paths), "condition": condition, "group": group})
            generated.append(root / f"scores_{condition}_{group}.tsv")
            score_images(images=table, out_tsv=generated[-1], **common)
    real = root / "scores_real.tsv"
    score_images(images=test.assign(condition="real"), out_tsv=real, **common)
    out = {
        name: root / "results" / name
        for name in ("table1.csv", "table1.md", "vs_paper.md", "metrics.csv", "outliers.tsv")
    }
    build_table1(
        generated=generated,
        real=real,
        conditions=CONDITIONS,
        kde_json=root / "kde.json",
        classifier_metrics=root / "cnn.json",
        classifier=root / "cnn.pt",
        train=train,
        cfg=cfg,
        run_label="toy run",
        synthetic=True,
        out_csv=out["table1.csv"],
        out_md=out["table1.md"],
        out_vs_paper=out["vs_paper.md"],
        out_metrics=out["metrics.csv"],
        out_outliers=out["outliers.tsv"],
        provenance={"base model": "toy", "generation seed": 0},
    )
    return {"root": root, "cfg": cfg, "generated": generated, "real": real, "train": train} | out


def test_table1_has_the_papers_columns_and_rows_plus_a_third_condition(run):
    table = pd.read_csv(run["table1.csv"])
    assert list(table.columns[: len(COLUMNS)]) == list(PAPER_TABLE1.columns[: len(COLUMNS)])
    assert table["generated set"].tolist() == PAPER_ROWS + EXTRA_ROWS + TAIL_ROWS
    outlier = table.set_index("generated set").loc["outlier"]
    assert outlier["n"] == 1 and outlier["predicted AD"] == "—"
    counts = table.set_index("generated set").loc[PAPER_ROWS + EXTRA_ROWS]
    per_set = counts["predicted AD"].astype(int) + counts["predicted CN"].astype(int)
    assert per_set.tolist() == [N_PER_SET, N_PER_SET, N_PER_SET - 1] + [N_PER_SET] * 3


def test_table1_numbers_trace_back_to_the_score_tsvs(run):
    table = pd.read_csv(run["table1.csv"]).set_index("generated set")
    outliers = io.read_tsv(run["outliers.tsv"])
    assert outliers["file"].tolist() == ["nobrain_AD_002.png"]
    scores = io.read_tsv(run["generated"][2])  # nobrain / AD
    kept = scores[~scores["path"].isin(outliers["path"])]
    row = table.loc["AD (no brain)"]
    assert float(row["AD log-lik"]) == pytest.approx(kept["loglik_AD"].mean(), abs=1e-4)
    assert float(row["CN log-lik"]) == pytest.approx(kept["loglik_CN"].mean(), abs=1e-4)
    assert int(row["misclassified (likelihood)"]) == int(
        (kept["loglik_CN"] > kept["loglik_AD"]).sum()
    )
    assert int(row["predicted AD"]) == int((kept["predicted"] == "AD").sum())
    real = io.read_tsv(run["real"])
    assert float(table.loc["held-out real CN", "CN log-lik"]) == pytest.approx(
        real.loc[real["group"] == "CN", "loglik_CN"].mean(), abs=1e-4
    )
    assert float(table.loc["outlier", "AD log-lik"]) == pytest.approx(
        outliers["loglik_AD"].mean(), abs=1e-4
    )


def test_markdown_records_label_warning_and_choices(run):
    md = run["table1.md"].read_text()
    assert "toy run" in md and "**SYNTHETIC DEMO DATA" in md
    for needle in (
        "KDE space",
        "bandwidths",
        "threshold =",
        "balanced accuracy",
        "nobrain_AD_002.png",
    ):
        assert needle in md
    vs = run["vs_paper.md"].read_text()
    assert "-423.95" in vs and "base model: toy" in vs and "AD (third)" in vs
    assert "| AD (no brain) |" in vs


def test_metrics_flag_the_copied_train_slice(run):
    metrics = pd.read_csv(run["metrics.csv"]).set_index("set")
    assert metrics.index.tolist() == PAPER_ROWS + EXTRA_ROWS + [
        "held-out real AD",
        "held-out real CN",
    ]
    assert metrics.loc["CN", "n_memorized"] >= 1 and metrics.loc["CN", "nn_corr_max"] > 0.999
    assert metrics.loc["AD (third)", "nn_corr_max"] < 0.999
    for column in ("frechet_distance", "precision", "recall", "density", "coverage"):
        assert metrics[column].notna().all()
    assert metrics["coverage"].between(0, 1).all()


def test_missing_generated_set_is_an_error(run, tmp_path):
    with pytest.raises(ValueError, match="third"):
        build_table1(
            generated=run["generated"][:4],
            real=run["real"],
            conditions=CONDITIONS,
            kde_json=run["root"] / "kde.json",
            classifier_metrics=run["root"] / "cnn.json",
            classifier=run["root"] / "cnn.pt",
            train=run["train"],
            cfg=run["cfg"],
            run_label="x",
            synthetic=False,
            out_csv=tmp_path / "t.csv",
            out_md=tmp_path / "t.md",
            out_vs_paper=tmp_path / "v.md",
            out_metrics=tmp_path / "m.csv",
            out_outliers=tmp_path / "o.tsv",
        )


def test_make_figures_writes_three_pngs(run):
    out = {n: run["root"] / "figures" / f"{n}.png" for n in ("figure1", "hist", "memo")}
    make_figures(
        generated=run["generated"],
        real=run["real"],
        conditions=CONDITIONS,
        cfg=run["cfg"],
        run_label="toy run",
        synthetic=True,
        out_figure1=out["figure1"],
        out_histograms=out["hist"],
        out_memorization=out["memo"],
        outliers=run["outliers.tsv"],
    )
    for path in out.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
