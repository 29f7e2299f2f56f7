"""brainmr.diffusion.demo_base: the tokenizer (each word one token, the same in every process)
and the models built from configs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tiny import TINY_BASE

from brainmr.config import stage_config
from brainmr.diffusion.config import DemoBaseConfig
from brainmr.diffusion.demo_base import build_models, build_tokenizer, word_merges


def test_tokenizer_gives_distinct_words_distinct_ids(tmp_path):
    tokenizer = build_tokenizer(tmp_path / "tok")
    words = ["ad", "cn", "a", "mri", "brain", "adni", "white", "circle", "noise"]
    ids = [tokenizer(w, add_special_tokens=False).input_ids for w in words]
    assert all(len(i) == 1 for i in ids), ids  # each listed word is one token
    assert len({i[0] for i in ids}) == len(words)
    unknown = tokenizer("zebra qxz", add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in unknown and len(unknown) > 2  # spelled out, not unknown


def test_word_merges_break_ties_by_text_not_by_order():
    merges = word_merges(["ab", "ba", "abc"])
    assert merges == [("a", "b"), ("a", "b</w>"), ("ab", "c</w>"), ("b", "a</w>")]
    assert word_merges(["abc", "ba", "ab"]) == merges


def test_tokenizer_files_are_the_same_in_every_process(tmp_path):
    """Token ids decide which embedding row a word trains: two processes (different hash seeds)
    must write the same files, or the demo base differs between runs."""
    code = "import sys; from pathlib import Path; from brainmr.diffusion.demo_base import "
    code += "write_tokenizer_files as w; w(Path(sys.argv[1]))"
    for name, seed in (("one", "1"), ("two", "2")):
        env = os.environ | {"PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    for file in ("vocab.json", "merges.txt"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_vae_crop_must_fit_the_vae_downsampling():
    with pytest.raises(ValueError, match="vae_crop 15 must be a multiple"):
        build_models(stage_config(DemoBaseConfig, "demo_base", **TINY_BASE, vae_crop=15), None)
