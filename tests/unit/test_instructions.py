"""brainmr.instructions: prompt templates written from each subject's age and sex, and the
requests of instructed generation; the DreamBooth instance set and the generated set's manifest
carry them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny import TINY_BASE

from brainmr import io
from brainmr.cohort.sets import instance_set
from brainmr.config import stage_config
from brainmr.instructions import (
    InstructionConfig,
    baseline_condition,
    is_template,
    render,
    request_table,
    template_fields,
)

TEMPLATE = "{group}, {age_bin} year old {sex_word}, a MRI brain, ADNI2"


def cfg(**overrides) -> InstructionConfig:
    return stage_config(InstructionConfig, "instructions", **overrides)


def test_fields_of_a_template_and_fixed_prompts():
    assert template_fields(TEMPLATE) == ["group", "age_bin", "sex_word"]
    assert not is_template("AD, a MRI brain, ADNI2") and is_template(TEMPLATE)
    with pytest.raises(ValueError, match="unknown field"):
        template_fields("AD, {height} cm")
    with pytest.raises(ValueError, match="prompt template"):
        template_fields("AD, {age_bin year old")


def test_render_writes_each_subjects_prompt_and_names_what_is_wrong():
    row = {"subject": "941_S_1195", "group": "AD", "age": 83.4, "sex": "F"}
    assert render(TEMPLATE, row, cfg()) == "AD, 80 year old woman, a MRI brain, ADNI2"
    assert render(TEMPLATE, row, cfg(age_bin_years=10)).startswith("AD, 80 year old")
    assert render("{age_bin_centre} {sex}", row | {"age": 77}, cfg()) == "77 F"
    assert render("AD, a MRI brain", row, None) == "AD, a MRI brain"  # fixed: no settings needed
    with pytest.raises(ValueError, match=r"subject 941_S_1195: field 'sex' is 'X'"):
        render(TEMPLATE, row | {"sex": "X"}, cfg())
    with pytest.raises(ValueError, match=r"subject 941_S_1195: field 'age' is missing"):
        render(TEMPLATE, row | {"age": None}, cfg())
    with pytest.raises(ValueError, match="needs the instructions settings"):
        render(TEMPLATE, row, None)


def heldout() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject": ["a", "b", "c", "d"],
            "group": ["AD", "AD", "CN", "CN"],
            "age": [71, 86, 64, 79],
            "sex": ["F", "M", "M", "F"],
        }
    )


def test_requests_are_drawn_from_the_heldout_reals_of_the_class_per_seed():
    table = request_table(TEMPLATE, heldout(), "AD", 50, cfg(), seed=0)
    assert len(table) == 50
    assert set(zip(table.requested_age, table.requested_sex, strict=True)) == {(72, "F"), (87, "M")}
    assert set(table.prompt) == {
        "AD, 70 year old woman, a MRI brain, ADNI2",
        "AD, 85 year old man, a MRI brain, ADNI2",
    }
    again = request_table(TEMPLATE, heldout(), "AD", 50, cfg(), seed=0)
    other = request_table(TEMPLATE, heldout(), "AD", 50, cfg(), seed=1)
    assert again.equals(table) and not other.equals(table)  # reproducible, new per seed
    with pytest.raises(ValueError, match="no held-out MCI"):
        request_table(TEMPLATE, heldout(), "MCI", 5, cfg(), seed=0)


def test_grid_requests_cycle_through_ages_and_sexes():
    table = request_table(TEMPLATE, heldout(), "CN", 6, cfg(requests="grid", grid_ages=[65, 85]), 0)
    assert list(zip(table.age_bin, table.requested_sex, strict=True)) == [
        (65, "F"),
        (65, "M"),
        (85, "F"),
        (85, "M"),
        (65, "F"),
        (65, "M"),
    ]


def test_instance_set_captions_each_slice_with_its_subjects_prompt(tmp_path):
    rows = []
    for i, (group, age, sex) in enumerate([("AD", 81, "F"), ("CN", 66, "M"), ("CN", 74, "F")]):
        path = tmp_path / f"s{i}.npy"
        io.save_npy(path, np.zeros((4, 4), np.float32))
        row = {"subject": f"s{i}", "group": group, "age": age, "sex": sex, "split": "train"}
        rows.append(row | {"path": str(path)})
    slices = pd.DataFrame(rows)
    prompts = {"AD": TEMPLATE, "CN": TEMPLATE.replace("{group}", "CN")}
    table = instance_set(slices, prompts, cfg())
    assert table.prompt.tolist() == [
        "AD, 80 year old woman, a MRI brain, ADNI2",
        "CN, 65 year old man, a MRI brain, ADNI2",
        "CN, 70 year old woman, a MRI brain, ADNI2",
    ]
    fixed = instance_set(slices, {"AD": "AD, a MRI brain", "CN": "CN, a MRI brain"})
    assert fixed.prompt.tolist() == ["AD, a MRI brain", "CN, a MRI brain", "CN, a MRI brain"]


def test_each_instructed_image_has_its_own_prompt_and_request_in_the_manifest(tmp_path):
    """Image i of an instructed set is drawn from its own prompt with its own seed: the same
    image as a plain run of that prompt at that index; the manifest carries its request."""
    from brainmr.cohort.sets import generated_table
    from brainmr.diffusion.config import DemoBaseConfig, GenerateConfig
    from brainmr.diffusion.demo_base import build_demo_base
    from brainmr.diffusion.generate import generate_image_sets, regenerate_image

    base = tmp_path / "base"
    build_demo_base(base, cfg=stage_config(DemoBaseConfig, "demo_base", **TINY_BASE))
    gen = stage_config(
        GenerateConfig, "generate", n_images=3, batch_size=2, seed=100, num_inference_steps=2
    )
    requests = request_table(TEMPLATE, heldout(), "AD", 3, cfg(), seed=0)
    out = tmp_path / "AD"
    generate_image_sets(
        model_dirs={"AD": base},
        prompts={"AD": TEMPLATE},
        condition="instructed",
        out_dirs={"AD": out},
        cfgs={"AD": gen},
        requests={"AD": requests},
    )
    manifest = generated_table(out)
    assert manifest.prompt.tolist() == requests.prompt.tolist()
    assert manifest.requested_age.tolist() == requests.requested_age.tolist()
    assert manifest.requested_sex.tolist() == requests.requested_sex.tolist()
    alone = regenerate_image(model_dir=base, prompt=requests.prompt.iloc[2], index=2, cfg=gen)
    written = io.load_png_gray(manifest.path.iloc[2])
    assert np.abs(written - alone.clip(0, 1)).max() <= 1 / 255 + 1e-6  # 8-bit rounding only
    with pytest.raises(ValueError, match="2 instruction requests for 3 images"):
        generate_image_sets(
            model_dirs={"AD": base},
            prompts={"AD": TEMPLATE},
            condition="instructed",
            out_dirs={"AD": tmp_path / "bad"},
            cfgs={"AD": gen},
            requests={"AD": requests.iloc[:2]},
        )


def test_baseline_is_the_configured_fixed_condition_or_the_first_one():
    conditions, templated = ["instructed", "brain", "nobrain"], ["instructed"]
    assert baseline_condition(conditions, templated, None) == "brain"
    assert baseline_condition(conditions, templated, "nobrain") == "nobrain"
    with pytest.raises(ValueError, match="'instructed': not a condition with fixed prompts"):
        baseline_condition(conditions, templated, "instructed")
    with pytest.raises(ValueError, match="'missing': not a condition"):
        baseline_condition(conditions, templated, "missing")
    with pytest.raises(ValueError, match="baseline condition with fixed prompts is needed"):
        baseline_condition(["instructed"], templated, None)


def test_requests_are_written_by_a_rule_and_read_back_as_drawn(tmp_path):
    """write_requests (the write_requests rule) writes every class's draw; read_requests gives
    the generation rule the same tables request_table draws."""
    from brainmr.instructions import read_requests, write_requests

    prompts = {"AD": TEMPLATE, "CN": TEMPLATE.replace("AD", "CN")}
    out = tmp_path / "requests.tsv"
    write_requests(out, prompts=prompts, heldout=heldout(), n=7, cfg=cfg(), seed=2)
    back = read_requests(out)
    assert list(back) == ["AD", "CN"]
    for group, prompt in prompts.items():
        drawn = request_table(prompt, heldout(), group, 7, cfg(), seed=2)
        pd.testing.assert_frame_equal(back[group], drawn, check_dtype=False)
