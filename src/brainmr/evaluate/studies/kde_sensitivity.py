"""The KDE sensitivity table (results/evaluate/kde_sensitivity.csv): Table 1's misclassified
counts of every generated set and the verdict on held-out reals, refitting the KDE
(brainmr.evaluate.judges.kde) for each PCA size x bandwidth rule x balance, so that a reader sees
how
much the counts hinge on those choices."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from brainmr import io
from brainmr.evaluate.config import BALANCES, BANDWIDTH_RULES, KdeConfig, check_kde_config
from brainmr.evaluate.images import flatten, load_normalised
from brainmr.evaluate.judges.bandwidth import choose_bandwidths, effective_rule
from brainmr.evaluate.judges.kde import (
    capped_components,
    component_cap,
    fit_densities,
    fit_pca,
    kde_coordinates,
    misclassified_mask,
    require_two_per_class,
    score_coordinates,
    verdict_metrics,
)
from brainmr.evaluate.judges.outliers import outlier_threshold
from brainmr.io import require_columns, require_groups

log = logging.getLogger(__name__)

SENSITIVITY_COLUMNS = [
    "pca_components",
    "bandwidth_rule",
    "balance",
    "is_default",
    "condition",
    "group",
    "seed",
    "n",
    "misclassified",
    "misclassified_fraction",
    "heldout_accuracy",
    "heldout_auc",
]

VARIANT = ["pca_components", "bandwidth_rule", "balance"]  # the columns naming a KDE variant


class MisclassifiedRange(NamedTuple):
    """How far the KDE variants move the misclassified fraction (see ``misclassified_range``)."""

    sets: pd.DataFrame  # condition, group, low, high: one row per set, in order of appearance
    n_variants: int


def misclassified_range(sensitivity: pd.DataFrame) -> MisclassifiedRange:
    """Per set of the sensitivity table: each variant's misclassified fraction pooled over seeds
    (misclassified / n, both summed over seeds), and the lowest and highest of these over the
    variants; with the number of variants."""
    rows = []
    for (condition, group), part in sensitivity.groupby(["condition", "group"], sort=False):
        by_variant = part.groupby(VARIANT)
        pooled = by_variant["misclassified"].sum() / by_variant["n"].sum()
        rows.append({"condition": condition, "group": group, "low": pooled.min()})
        rows[-1]["high"] = pooled.max()
    sets = pd.DataFrame(rows, columns=["condition", "group", "low", "high"])
    return MisclassifiedRange(sets, sensitivity.groupby(VARIANT).ngroups)


def sensitivity_components(cfg: KdeConfig, n_train: int, n_features: int) -> list[int]:
    """PCA sizes of the sensitivity table, capped like the fit itself, de-duplicated, sorted."""
    requested = cfg.sensitivity_pca_components or [
        max(1, cfg.pca_components // 2),
        cfg.pca_components,
        2 * cfg.pca_components,
    ]
    return sorted({component_cap(k, n_train, n_features) for k in requested})


def kde_sensitivity(
    train_pixels: np.ndarray,
    train_groups: np.ndarray,
    test_pixels: np.ndarray,
    test_groups: np.ndarray,
    generated: pd.DataFrame,
    generated_pixels: np.ndarray,
    cfg: KdeConfig,
    mad_k: float,
) -> pd.DataFrame:
    """The misclassified counts of every generated set (``generated``: condition, group, seed,
    one row per row of ``generated_pixels``) and the verdict on held-out reals, refitting the KDE
    for each PCA size x bandwidth rule x balance. One row per (variant, set); is_default marks
    cfg's own variant (rule "fixed" when cfg.bandwidth is set). Counts leave out the images that
    are outliers under the variant's own KDE (Table 1's rule, ``mad_k``, with the threshold from
    the held-out reals under that KDE), so the default variant's rows are Table 1's counts."""
    check_kde_config(cfg)
    require_columns(generated, ["condition", "group", "seed"], "generated table")
    if len(generated) != len(generated_pixels):
        raise ValueError(f"{len(generated)} generated rows but {len(generated_pixels)} images")
    train_groups = np.asarray(train_groups).astype(str)
    test_groups = np.asarray(test_groups).astype(str)
    require_two_per_class(train_groups)
    gen_groups = generated["group"].astype(str).to_numpy()
    sets = generated[["condition", "group", "seed"]].reset_index(drop=True)
    default_components = capped_components(cfg.pca_components, train_pixels)
    components = sorted(
        set(sensitivity_components(cfg, len(train_pixels), train_pixels.shape[1]))
        | {default_components}
    )
    rules = [*BANDWIDTH_RULES, *(["fixed"] if cfg.bandwidth is not None else [])]
    default = (default_components, effective_rule(cfg), cfg.kde_balance)
    rows = []
    for k in components:
        # The PCA and the coordinates depend on k alone: fitted once for all rules and balances.
        pca = fit_pca(train_pixels, k, cfg.seed)
        z_train, z_test, z_gen = (
            kde_coordinates(pca, p) for p in (train_pixels, test_pixels, generated_pixels)
        )
        for rule in rules:
            rule_cfg = variant_cfg(cfg, rule)
            bandwidths, _ = choose_bandwidths(z_train, train_groups, rule_cfg)
            for balance in BALANCES:
                densities = fit_densities(
                    z_train,
                    train_groups,
                    bandwidths,
                    balance=balance,
                    repeats=cfg.kde_balance_repeats,
                    seed=cfg.seed,
                )
                held_loglik = score_coordinates(densities, z_test)
                held = verdict_metrics(test_groups, held_loglik["AD"], held_loglik["CN"])
                gen_loglik = score_coordinates(densities, z_gen)
                wrong = misclassified_mask(gen_groups, gen_loglik)
                cut = outlier_threshold(np.maximum(*held_loglik.values()), mad_k)
                kept = np.maximum(gen_loglik["AD"], gen_loglik["CN"]) >= cut
                variant = {
                    "pca_components": k,
                    "bandwidth_rule": rule,
                    "balance": balance,
                    "is_default": (k, rule, balance) == default,
                }
                counted = (
                    sets.assign(wrong=wrong & kept, kept=kept)
                    .groupby(["condition", "group", "seed"], sort=False)
                    .agg(n=("kept", "sum"), misclassified=("wrong", "sum"))
                    .reset_index()
                )
                for row in counted.itertuples(index=False):
                    rows.append(
                        variant
                        | {"condition": row.condition, "group": row.group, "seed": row.seed}
                        | {"n": int(row.n), "misclassified": int(row.misclassified)}
                        | {"misclassified_fraction": int(row.misclassified) / max(int(row.n), 1)}
                        | {"heldout_accuracy": held["accuracy"], "heldout_auc": held["auc"]}
                    )
                log.info(
                    "KDE variant k=%d rule=%s balance=%s: held-out accuracy %s",
                    k,
                    rule,
                    balance,
                    held["accuracy"],
                )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def variant_cfg(cfg: KdeConfig, rule: str) -> KdeConfig:
    """cfg with one bandwidth rule in force ("fixed" keeps cfg.bandwidth, others drop it)."""
    if rule == "fixed":
        return cfg
    return dataclasses.replace(cfg, bandwidth=None, bandwidth_rule=rule)


def kde_sensitivity_file(
    *,
    train: pd.DataFrame,
    test: pd.DataFrame,
    generated: pd.DataFrame,
    out_csv: Path,
    cfg: KdeConfig,
    mad_k: float,
) -> None:
    """kde_sensitivity on image tables (``path``, ``group``; generated also condition, seed)."""
    require_columns(train, ["path", "group"], "KDE training table")
    require_columns(test, ["path", "group"], "held-out table")
    require_columns(generated, ["path", "condition", "group", "seed"], "generated table")
    for table, what in ((train, "training"), (test, "held-out"), (generated, "generated")):
        require_groups(table["group"], f"{what} table")
    table = kde_sensitivity(
        flatten(load_normalised(train["path"])),
        train["group"].to_numpy(),
        flatten(load_normalised(test["path"])),
        test["group"].to_numpy(),
        generated.reset_index(drop=True),
        flatten(load_normalised(generated["path"])),
        cfg,
        mad_k,
    )
    with io.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info("KDE sensitivity: %d rows -> %s", len(table), out_csv)
