"""Frozen configs of the evaluation stages. One schema section (``evaluate``) feeds them all; each
rule passes only its own stage's keys, so changing, say, the outlier rule does not refit the KDE
or retrain the CNN. Defaults live in the schema alone."""

from __future__ import annotations

from dataclasses import dataclass

from brainmr.config import fields_of, from_section  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class KdeConfig:
    """PCA + Gaussian KDE per class, and the sensitivity table's variants."""

    pca_components: int
    bandwidth: float | None
    bandwidth_rule: str
    bandwidth_bounds: list[float]
    kde_balance: str
    kde_balance_repeats: int
    sensitivity_pca_components: list[int]
    seed: int


# The KDE's options (brainmr.evaluate.judges.bandwidth, brainmr.evaluate.judges.kde).
BANDWIDTH_RULES = ("shared", "per_class")
BALANCES = ("none", "subsample")


def check_kde_config(cfg: KdeConfig) -> None:
    """Refuse a KdeConfig whose bandwidth rule, balance, bandwidth or repeats are invalid."""
    if cfg.bandwidth_rule not in BANDWIDTH_RULES:
        raise ValueError(f"bandwidth_rule {cfg.bandwidth_rule!r} not in {BANDWIDTH_RULES}")
    if cfg.kde_balance not in BALANCES:
        raise ValueError(f"kde_balance {cfg.kde_balance!r} not in {BALANCES}")
    if cfg.bandwidth is not None and not cfg.bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {cfg.bandwidth}")
    if cfg.kde_balance_repeats < 1:
        raise ValueError(f"kde_balance_repeats must be >= 1, got {cfg.kde_balance_repeats}")


@dataclass(frozen=True)
class ClassifierConfig:
    """The 2-D AD/CN CNN (trained once per replicate seed) and its held-out intervals."""

    cnn_epochs: int
    cnn_batch_size: int
    cnn_learning_rate: float
    cnn_patience: int
    cnn_val_fraction: float
    cnn_input_size: int | None
    n_bootstrap: int
    seed: int


@dataclass(frozen=True)
class JudgeConfig:
    """Memorization, fidelity/diversity and the out-of-distribution guard of set_metrics."""

    memorization_quantile: float
    ood_fraction: float
    matched_draws: int
    knn_k: int
    cnn_batch_size: int
    seed: int
