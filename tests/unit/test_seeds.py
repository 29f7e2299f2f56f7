"""brainmr.seeds: replicate seeds vs generator seeds; generated sets take their replicate seed
from the workflow, never from a folder name."""

from __future__ import annotations

import pandas as pd
import pytest

from brainmr.cohort.sets import generated_sets
from brainmr.config import load_schema
from brainmr.seeds import MAX_IMAGES_PER_SET, first_generator_seed


def test_generator_seeds_of_replicates_never_overlap():
    assert first_generator_seed(0) == 0
    assert first_generator_seed(3) == 30000
    # the schema's cap on images per set is the spacing between replicates' generator seeds
    n_images = load_schema()["properties"]["generate"]["properties"]["n_images"]
    assert n_images["maximum"] == MAX_IMAGES_PER_SET
    last_of_0 = first_generator_seed(0) + n_images["maximum"] - 1
    assert last_of_0 < first_generator_seed(1)


def _set(folder, condition, group, n):
    folder.mkdir(parents=True)
    manifest = pd.DataFrame(
        {
            "file": [f"{i:04d}.png" for i in range(n)],
            "generator_seed": [100 + i for i in range(n)],
            "prompt": [f"{group} prompt"] * n,
            "condition": condition,
            "group": group,
        }
    )
    manifest.to_csv(folder / "manifest.tsv", sep="\t", index=False)
    return folder


def test_generated_sets_take_the_replicate_seed_given_not_the_folder_name(tmp_path):
    # folder names that say nothing (or something wrong) about the seed
    a = _set(tmp_path / "x" / "AD", "brain", "AD", 2)
    b = _set(tmp_path / "seed9" / "CN", "brain", "CN", 3)
    table = generated_sets([a, b], [4, 7])
    assert table["seed"].tolist() == [4, 4, 7, 7, 7]
    assert table["generator_seed"].tolist() == [100, 101, 100, 101, 102]
    assert table["path"].iloc[2] == str(b / "0000.png")
    with pytest.raises(ValueError, match="2 generated image folders but 1 seeds"):
        generated_sets([a, b], [4])
