"""A prompt condition of the config: its class prompts and the options a remedy may set.

A condition trains one DreamBooth model on the train slices of every class (the paper's setup) or,
with ``per_class_models``, one model per class (no token is shared between classes). Its options
override the ``dreambooth`` and ``generate`` sections for that condition alone, so that a remedy
is a few lines of YAML and changing one condition reruns that condition alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brainmr import GROUPS

SHARED_MODEL = "shared"  # the model folder of a condition trained on every class at once
# Condition keys that override the dreambooth section (same names there)
DREAMBOOTH_OVERRIDES = ("class_balance", "train_text_encoder", "with_prior_preservation")
# Condition keys that override the generate section, per class or for both
GENERATE_OVERRIDES = ("guidance_scale", "negative_prompt")


@dataclass(frozen=True)
class Condition:
    name: str
    prompts: dict[str, str]
    label: str | None = None  # Table 1's row suffix (" (no brain)"); None: told by its name
    per_class_models: bool = False
    dreambooth: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, spec: Mapping) -> Condition:
        missing = [g for g in GROUPS if g not in spec]
        if missing:
            raise ValueError(f"condition {name!r}: no prompt for class(es) {missing}")
        generate: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        for key in GENERATE_OVERRIDES:
            value = spec.get(key)
            if value is None:
                continue
            per_class = value if isinstance(value, Mapping) else dict.fromkeys(GROUPS, value)
            unknown = sorted(set(per_class) - set(GROUPS))
            if unknown:
                raise ValueError(f"condition {name!r}: {key} for unknown class(es) {unknown}")
            for group, v in per_class.items():
                generate[group][key] = v
        return cls(
            name=name,
            prompts={g: str(spec[g]) for g in GROUPS},
            label=None if spec.get("label") is None else str(spec["label"]),
            per_class_models=bool(spec.get("per_class_models", False)),
            dreambooth={k: spec[k] for k in DREAMBOOTH_OVERRIDES if spec.get(k) is not None},
            generate=generate,
        )

    def models(self) -> list[str]:
        """The model folders this condition trains: one per class or one shared."""
        return list(GROUPS) if self.per_class_models else [SHARED_MODEL]

    def model_of(self, group: str) -> str:
        """The model that generates ``group``'s images."""
        return group if self.per_class_models else SHARED_MODEL

    def training_prompts(self, model: str) -> dict[str, str]:
        """Class -> prompt of the instance images a model is trained on."""
        if model == SHARED_MODEL and not self.per_class_models:
            return dict(self.prompts)
        if self.per_class_models and model in GROUPS:
            return {model: self.prompts[model]}
        raise ValueError(f"condition {self.name!r} has no model {model!r} (has {self.models()})")

    def dreambooth_settings(self, section: Mapping) -> dict[str, Any]:
        """The dreambooth section with this condition's overrides."""
        return dict(section) | self.dreambooth

    def generate_settings(self, section: Mapping, group: str) -> dict[str, Any]:
        """The generate section with this condition's overrides for ``group``."""
        return dict(section) | self.generate.get(group, {})


def settings_key(settings: Mapping) -> str:
    """A short name of the settings that define a piece of work (8 hex digits of the SHA-1 of
    their canonical JSON): the folder of a condition's models or image sets, so that runs and
    studies with equal settings share the work and those with different settings never
    overwrite it."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def active_specs(config: Mapping) -> dict[str, Mapping]:
    """The config's conditions, less those set to null (dropped by a layered config file)."""
    specs = {name: spec for name, spec in config["conditions"].items() if spec is not None}
    if not specs:
        raise ValueError("config: every condition is null; at least one is needed")
    return specs


# The evaluation's own sets in score tables and Table 1, which no condition may be called
REAL_CONDITION = "real"  # the held-out real slices
OUTLIER_SET = "outlier"  # the outlier row (all generated outliers of a seed)
RESERVED_NAMES = (REAL_CONDITION, OUTLIER_SET)
RESERVED_PREFIX = "ceiling_"  # the reconstruction-ceiling sets (brainmr.evaluate.ceiling)


def conditions_of(config: Mapping) -> dict[str, Condition]:
    """Name -> Condition of the config, in config order (null conditions left out)."""
    return conditions_from(active_specs(config))


def conditions_from(specs: Mapping) -> dict[str, Condition]:
    """Name -> Condition of a mapping of condition specs (a rule's params carry the specs, plain
    data; its script turns them into the Conditions that every function receives)."""
    bad = [n for n in specs if n in RESERVED_NAMES or n.startswith(RESERVED_PREFIX)]
    if bad:
        raise ValueError(
            f"config conditions: {bad} are names of the evaluation's own sets "
            f"({', '.join(RESERVED_NAMES)}, {RESERVED_PREFIX}*); rename the condition"
        )
    return {name: Condition.from_config(name, spec) for name, spec in specs.items()}


def remedies_of(config: Mapping) -> tuple[str, list[str]] | None:
    """The remedies study's baseline and remedy conditions, checked against the conditions."""
    study = config.get("remedies")
    if not study:
        return None
    known = set(active_specs(config))
    named = [study["baseline"], *study["compare"]]
    unknown = [n for n in named if n not in known]
    if unknown:
        raise ValueError(
            f"config remedies: {unknown} not among the conditions {sorted(known)} "
            "(a remedy is a condition: define it under conditions)"
        )
    if study["baseline"] in study["compare"]:
        raise ValueError(f"config remedies: the baseline {study['baseline']!r} is also a remedy")
    return study["baseline"], list(study["compare"])
