"""Per-condition options: which models a condition trains, and how its options override the
dreambooth and generate sections for that condition alone."""

from __future__ import annotations

import pytest

from brainmr.conditions import (
    SHARED_MODEL,
    Condition,
    active_specs,
    conditions_of,
    remedies_of,
    settings_key,
)

BRAIN = {"AD": "AD, a MRI brain, ADNI2", "CN": "CN, a MRI brain, ADNI2"}


def test_the_papers_condition_trains_one_shared_model():
    cond = Condition.from_config("brain", BRAIN | {"label": ""})
    assert cond.models() == [SHARED_MODEL]
    assert cond.model_of("AD") == cond.model_of("CN") == SHARED_MODEL
    assert cond.training_prompts(SHARED_MODEL) == BRAIN
    section = {"train_text_encoder": False, "class_balance": "none", "learning_rate": 1e-4}
    assert cond.dreambooth_settings(section) == section  # no overrides: the section itself
    assert cond.generate_settings({"guidance_scale": 7.5}, "AD") == {"guidance_scale": 7.5}
    with pytest.raises(ValueError, match="has no model 'AD'"):
        cond.training_prompts("AD")


def test_per_class_models_train_each_class_alone():
    cond = Condition.from_config("separate", BRAIN | {"per_class_models": True})
    assert cond.models() == ["AD", "CN"]
    assert cond.model_of("CN") == "CN"
    assert cond.training_prompts("CN") == {"CN": BRAIN["CN"]}  # no token of the other class
    with pytest.raises(ValueError, match="has no model"):
        cond.training_prompts(SHARED_MODEL)


def test_options_override_their_sections_for_this_condition_only():
    spec = BRAIN | {
        "class_balance": "oversample",
        "with_prior_preservation": True,
        "guidance_scale": {"AD": 9.0},
        "negative_prompt": {"AD": BRAIN["CN"], "CN": BRAIN["AD"]},
    }
    cond = Condition.from_config("remedy", spec)
    section = {"class_balance": "none", "with_prior_preservation": False, "seed": 0}
    assert cond.dreambooth_settings(section) == {
        "class_balance": "oversample",
        "with_prior_preservation": True,
        "seed": 0,
    }
    generate = {"guidance_scale": 3.0, "negative_prompt": "", "n_images": 100}
    assert cond.generate_settings(generate, "AD") == {
        "guidance_scale": 9.0,
        "negative_prompt": BRAIN["CN"],
        "n_images": 100,
    }
    assert cond.generate_settings(generate, "CN") == {
        "guidance_scale": 3.0,  # not set for CN: the section's
        "negative_prompt": BRAIN["AD"],
        "n_images": 100,
    }
    both = Condition.from_config("g", BRAIN | {"guidance_scale": 5.0})
    assert both.generate_settings(generate, "CN")["guidance_scale"] == 5.0
    with pytest.raises(ValueError, match="unknown class"):
        Condition.from_config("bad", BRAIN | {"guidance_scale": {"MCI": 2.0}})
    with pytest.raises(ValueError, match="no prompt for class"):
        Condition.from_config("bad", {"AD": "AD"})


def test_null_conditions_are_left_out_and_remedies_are_checked():
    config = {
        "conditions": {"brain": BRAIN, "nobrain": None, "balance": BRAIN},
        "remedies": {"baseline": "brain", "compare": ["balance"]},
    }
    assert list(active_specs(config)) == ["brain", "balance"]
    assert list(conditions_of(config)) == ["brain", "balance"]
    assert remedies_of(config) == ("brain", ["balance"])
    assert remedies_of({"conditions": {"brain": BRAIN}}) is None
    dropped = config | {"remedies": {"baseline": "brain", "compare": ["nobrain"]}}
    with pytest.raises(ValueError, match=r"\['nobrain'\] not among the conditions"):
        remedies_of(dropped)
    itself = config | {"remedies": {"baseline": "brain", "compare": ["brain"]}}
    with pytest.raises(ValueError, match="also a remedy"):
        remedies_of(itself)
    with pytest.raises(ValueError, match="every condition is null"):
        active_specs({"conditions": {"brain": None}})


def test_settings_key_names_equal_settings_alike_and_different_ones_apart():
    """The folder key of a model or image set: the same for the same settings in any order,
    different for any changed value (an image count, a prompt, a nested override), and the
    SHA-1 of the canonical JSON as computed independently."""
    import hashlib

    settings = {"prompts": {"AD": "AD, a MRI brain", "CN": "CN, a MRI brain"}, "n_images": 100}
    key = settings_key(settings)
    assert len(key) == 8 and int(key, 16) >= 0
    reordered = {"n_images": 100, "prompts": {"CN": "CN, a MRI brain", "AD": "AD, a MRI brain"}}
    assert settings_key(reordered) == key
    assert settings_key(settings | {"n_images": 50}) != key
    assert settings_key(settings | {"prompts": {"AD": "AD", "CN": "CN, a MRI brain"}}) != key
    canonical = '{"n_images":100,"prompts":{"AD":"AD, a MRI brain","CN":"CN, a MRI brain"}}'
    assert key == hashlib.sha1(canonical.encode()).hexdigest()[:8]
