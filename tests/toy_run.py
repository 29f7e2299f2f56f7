"""A toy run of the whole evaluation and report chain on CPU (seconds): three conditions (one
without a label), a ceiling set, two replicate seeds, a noise image in nobrain/AD (the outlier)
and an exact train copy in brain/CN (the memorized image). tests/conftest.py builds it once per
session (fixture toy_run) for the tests of brainmr.report and of the chain. Beside it, hand-made
evaluate outputs with known answers for the formatting tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from toy_evaluation import write_slices

from brainmr import io
from brainmr.conditions import conditions_from
from brainmr.config import stage_config
from brainmr.evaluate.config import ClassifierConfig, JudgeConfig, KdeConfig
from brainmr.evaluate.judges.classifier import train_classifier
from brainmr.evaluate.judges.kde import fit_kde
from brainmr.evaluate.judges.outliers import flag_outlier_files, flag_reference_files
from brainmr.evaluate.judges.scoring import judge_images, real_morphometry_file, score_images
from brainmr.evaluate.judges.sets import set_metrics_file
from brainmr.evaluate.studies.kde_sensitivity import kde_sensitivity_file
from brainmr.evaluate.table1.replicates import summarise_replicates
from brainmr.evaluate.toy import toy_slices
from brainmr.report import write_tables

CONDITIONS = conditions_from(
    {
        "brain": {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain, ADNI2", "label": ""},
        "nobrain": {"AD": "AD, ADNI2", "CN": "CN, ADNI2", "label": " (no brain)"},
        "third": {"AD": "AD, a T1 slice", "CN": "CN, a T1 slice"},  # no label: its key names it
    }
)
PAPER_ROWS = ["AD", "CN", "AD (no brain)", "CN (no brain)"]
EXTRA_ROWS = ["AD (third)", "CN (third)"]
CEILING = "ceiling_vae32"
CEILING_ROWS = [f"held-out real {g} through the generator (vae32)" for g in ("AD", "CN")]
TAIL_ROWS = ["outlier", *CEILING_ROWS, "held-out real AD", "held-out real CN"]
N_PER_SET = 6  # generated images per set and seed
N_REAL = 10  # held-out real slices per class
SEEDS = [0, 1]


# Hand-made evaluate outputs with known answers, for the formatting tests (no run behind them).
VERDICT = {
    "seeds": [0, 1],
    "outlier_threshold": -44.1244,
    "outliers_per_seed": [
        {"seed": 0, "generated": 1, "real": 1, "real_total": 10},
        {"seed": 1, "generated": 0, "real": 1, "real_total": 10},
    ],
    "kde_verdict_on_heldout_reals": {
        "rule": "AD when AD > CN",
        "n_AD": 10,
        "n_CN": 10,
        "accuracy": 0.95,
        "accuracy_low": 0.7639,
        "accuracy_high": 0.9911,
        "auc": 1.0,
        "auc_low": math.nan,
        "auc_high": 1.0,
    },
}


def sensitivity_rows() -> pd.DataFrame:
    """Two KDE variants x two seeds of brain/AD: pooled over seeds 1/10 and 5/10."""
    rows = [
        (5, "shared", "none", 0, 6, 1),
        (5, "shared", "none", 1, 4, 0),
        (10, "shared", "none", 0, 6, 3),
        (10, "shared", "none", 1, 4, 2),
    ]
    columns = ["pca_components", "bandwidth_rule", "balance", "seed", "n", "misclassified"]
    return pd.DataFrame(rows, columns=columns).assign(condition="brain", group="AD")


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


def build(root: Path) -> dict:
    """A toy run of the whole evaluation and report chain, two replicate seeds, under ``root``:
    the paths of its inputs and outputs."""
    kde_cfg = stage_config(KdeConfig, "evaluate", pca_components=10)
    judge = stage_config(JudgeConfig, "evaluate", matched_draws=5)
    train = pd.concat(
        [
            write_slices(root, toy_slices(g, 16, seed=s), g, "train")
            for g, s in (("AD", 1), ("CN", 2))
        ],
        ignore_index=True,
    )
    test = pd.concat(
        [
            write_slices(root, toy_slices(g, N_REAL, seed=s), g, "test")
            for g, s in (("AD", 3), ("CN", 4))
        ],
        ignore_index=True,
    )
    fit_kde(train=train, out_model=root / "kde.joblib", out_json=root / "kde.json", cfg=kde_cfg)
    scans = pd.concat([train.assign(split="train"), test.assign(split="test")])
    scans = scans.assign(age=70.0, sex="F")
    real_morphometry_file(slices=scans, out_tsv=root / "morphometry_reals.tsv")
    ceiling = write_ceiling(root, test)
    # as the workflow: the reference sets (held-out reals, ceiling sets) scored and flagged once
    references = {f"{c}_{g}": t for (c, g), t in ceiling.items()}
    references["real_test"] = test.assign(condition="real")
    for name, table in references.items():
        score_images(
            images=table,
            kde_model=root / "kde.joblib",
            train=train,
            out_tsv=root / f"scores_{name}.tsv",
        )
    flag_reference_files(
        real=root / "scores_real_test.tsv",
        ceilings=[root / f"scores_{n}.tsv" for n in references if n != "real_test"],
        out_tsv=root / "references.tsv",
        mad_k=5.0,
    )
    files = {"scores": [], "set_metrics": [], "cnn": [], "generated": []}
    for seed in SEEDS:
        d = root / f"seed{seed}"
        train_classifier(
            scans=scans,
            out_model=d / "cnn.pt",
            out_metrics=d / "cnn.json",
            out_predictions=d / "pred.tsv",
            cfg=stage_config(
                ClassifierConfig, "evaluate", cnn_epochs=3, seed=seed, n_bootstrap=200
            ),
        )
        tables = write_generated(root, train, seed)
        generated, judged = [], []
        # then each generated set's seed-free scores, and this seed's CNN on every set
        sets = [f"{c}_{g}" for c, g in tables] + list(references)
        for (c, g), table in tables.items():
            generated.append(d / f"scores_{c}_{g}.tsv")
            score_images(
                images=table, kde_model=root / "kde.joblib", train=train, out_tsv=generated[-1]
            )
        for name in sets:
            judged.append(d / f"cnn_{name}.tsv")
            judge_images(
                scores=(root if name in references else d) / f"scores_{name}.tsv",
                classifier=d / "cnn.pt",
                out_tsv=judged[-1],
                out_features=d / f"cnn_{name}.npy",
            )
        flag_outlier_files(
            generated=generated,
            references=root / "references.tsv",
            cnn=judged,
            out_tsv=d / "scores.tsv",
        )
        set_metrics_file(
            scores=d / "scores.tsv",
            features=[p.with_suffix(".npy") for p in judged],
            cnn=judged,
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
        references=root / "references.tsv",
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
