"""Replicate seeds and the generator seeds derived from them.

A replicate seed names one repetition of the whole experiment: its DreamBooth models, its CNN and
its generated sets (results/.../seed<s>/). The workflow passes it to every job as a parameter;
nothing reads it back out of a path. Each generated image has a generator seed of its own, derived
from the replicate seed, so that any image can be regenerated alone; manifests record it as
``generator_seed``."""

from __future__ import annotations

MAX_IMAGES_PER_SET = 10000  # generator seeds of replicate s: 10000 s ... 10000 s + 9999


def first_generator_seed(replicate_seed: int) -> int:
    """The generator seed of image 0 of a set of replicate ``replicate_seed`` (image i: + i)."""
    return MAX_IMAGES_PER_SET * int(replicate_seed)


def headline_seed(seeds) -> int:
    """The replicate seed whose table is the paper's Table 1 (table1.*, Figure 1): the first
    of the config's ``seeds``; every other figure is across seeds."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no replicate seeds")
    return int(seeds[0])
