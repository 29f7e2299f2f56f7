"""Where torch work runs: the one place that picks the device (training, sampling, judging)."""

from __future__ import annotations

import torch


def best_device() -> torch.device:
    """CUDA where torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
