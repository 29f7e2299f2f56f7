from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CohortConfig:
    source: str
    collection_csv: str
    download_dir: str
    groups: list[str]
    modality: str
    description_pattern: str
    selection: str
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class DemoConfig:
    n_ad: int
    n_cn: int
    n_other: int
    atrophy: float
    voxel_mm: float
    seed: int
