"""Reconstruction-ceiling sets: held-out real slices taken through a generator's bottleneck.

A DreamBooth model can only draw what its VAE, at its training resolution, can represent: a
slice is resized to R px, encoded, decoded and resized back to the slice size, exactly as the
generator's images are. Held-out reals through that path are the best any such generator could
deliver, so every judge's reading of them tells how much of "generated AD looks CN" the
bottleneck alone produces, before asking whether the model learned AD. One set per distinct
(VAE, resolution): the VAE is the base model's (DreamBooth trains the UNet and text encoder
only), so the sets do not depend on the replicate seed. The images are made by
``brainmr.diffusion.bottleneck``; this module names them for the evaluation.
"""

from __future__ import annotations

from brainmr.conditions import RESERVED_PREFIX

CEILING_PREFIX = RESERVED_PREFIX  # the ``condition`` of a ceiling set in score tables


def bottleneck_name(resolution: int) -> str:
    """The name of the (base VAE, resolution) bottleneck: the base is one per run."""
    return f"vae{int(resolution)}"


def ceiling_condition(bottleneck: str) -> str:
    return f"{CEILING_PREFIX}{bottleneck}"


def is_ceiling(condition: str) -> bool:
    return str(condition).startswith(CEILING_PREFIX)
