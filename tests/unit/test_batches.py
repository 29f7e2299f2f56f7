"""brainmr.diffusion.batches: the instance set (checked, prompts whole) and the batch order, a
pure function of seed and step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from diffusers import StableDiffusionPipeline
from tiny import AD_PROMPT, CN_PROMPT, dreambooth_cfg

from brainmr import io
from brainmr.diffusion.batches import batch_indices, load_instance_set, step_batch
from brainmr.diffusion.common import tokenize


def test_prompts_with_commas_are_never_split(tiny_base, tiny_instances):
    tokenizer = StableDiffusionPipeline.from_pretrained(str(tiny_base)).tokenizer
    assert load_instance_set(tiny_instances).prompts == list(tiny_instances.prompt)
    whole = tokenize(tokenizer, [AD_PROMPT])[0]
    direct = tokenizer(AD_PROMPT, padding="max_length", max_length=77).input_ids
    assert whole.tolist() == direct
    comma = tokenizer(",", add_special_tokens=False).input_ids[0]
    assert (whole == comma).sum() == 2  # both commas inside one sequence
    cn = tokenize(tokenizer, [CN_PROMPT])[0]
    assert (whole != cn).sum() == 1  # AD and CN differ in exactly their class token


def test_bad_instance_slice_names_file_and_subject(tmp_path, tiny_instances):
    bad = tmp_path / "bad.npy"
    io.save_npy(bad, np.zeros((4, 160, 160), np.float32))
    extra = pd.DataFrame([{"path": str(bad), "group": "AD", "prompt": AD_PROMPT, "subject": "S99"}])
    with pytest.raises(ValueError, match=r"bad\.npy.*S99"):
        load_instance_set(pd.concat([tiny_instances, extra]))
    with pytest.raises(ValueError, match="prompt"):
        load_instance_set(tiny_instances.drop(columns="prompt"))


def test_batch_order_is_a_pure_function_of_seed_and_step():
    kw = dict(n_items=5, batch_size=2, accumulation=1)
    seq = np.concatenate([batch_indices(s, 0, seed=3, **kw) for s in range(5)])
    assert sorted(seq[:5]) == list(range(5)) and sorted(seq[5:]) == list(range(5))  # epochs
    assert np.array_equal(batch_indices(4, 0, seed=3, **kw), seq[8:10])
    assert not np.array_equal(
        seq, np.concatenate([batch_indices(s, 0, seed=4, **kw) for s in range(5)])
    )


def test_class_images_follow_the_instances_in_a_batch():
    """Prior preservation: train_batch_size instance items, then as many class items, offset by
    the number of instances."""
    cfg = dreambooth_cfg(with_prior_preservation=True, gradient_accumulation_steps=2)
    idx = step_batch(0, 1, 8, 3, cfg)
    assert len(idx) == 4 and all(i < 8 for i in idx[:2]) and all(8 <= i < 11 for i in idx[2:])


def test_oversampled_batches_hold_each_class_equally():
    """class_balance: oversample draws AD and CN 1:1 per batch whatever the class sizes (3 AD
    vs 9 CN here), as a pure function of seed and step (a resumed run draws the same)."""
    groups = ["AD"] * 3 + ["CN"] * 9
    cfg = dreambooth_cfg(train_batch_size=4, class_balance="oversample")
    plain = dreambooth_cfg(train_batch_size=4)
    drawn, drawn_plain = [], []
    for step in range(30):
        idx = step_batch(step, 0, len(groups), 0, cfg, groups=groups)
        assert [groups[i] for i in idx].count("AD") == 2  # 2 of 4 in every batch
        assert np.array_equal(idx, step_batch(step, 0, len(groups), 0, cfg, groups=groups))
        drawn += [groups[i] for i in idx]
        drawn_plain += [groups[i] for i in step_batch(step, 0, len(groups), 0, plain, groups)]
    assert drawn.count("AD") == 60
    assert drawn_plain.count("AD") == 30  # the paper's setup: AD in proportion, 3 of 12
    # every AD slice is seen, each as often (3 AD slices, 60 draws: 20 each)
    ad_draws = [i for step in range(30) for i in step_batch(step, 0, 12, 0, cfg, groups)]
    counts = np.bincount([i for i in ad_draws if i < 3], minlength=3)
    assert counts.tolist() == [20, 20, 20]
