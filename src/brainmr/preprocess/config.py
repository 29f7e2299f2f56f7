from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreprocessConfig:
    skull_strip: str  # deepbet | none | command
    strip_command: str  # with {input} and {output} (the brain mask) placeholders
    deepbet_threshold: float
    registration_mm: float
    registration_iterations: int
    shrink_factors: list[int]
    smoothing_sigmas: list[float]
    normalise_percentile: float
