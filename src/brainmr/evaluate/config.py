from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateConfig:
    pca_components: int
    bandwidth: float | None
    bandwidth_grid: list[float]
    outlier_quantile: float
    outlier_margin: float
    memorization_quantile: float
    cnn_epochs: int
    cnn_batch_size: int
    cnn_learning_rate: float
    cnn_patience: int
    cnn_val_fraction: float
    knn_k: int
    seed: int
