"""Validate a config with the package alone (an installed brainmr, no workflow beside it): the
schema shipped in brainmr/schemas, defaults filled as the workflow fills them."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator, validators

from brainmr.config import load_schema


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` checked against the schema, with the schema's defaults filled in (as
    Snakemake's ``validate(..., set_default=True)``); a violation raises
    jsonschema.ValidationError naming the key."""

    def fill_defaults(validator, properties, instance, schema):
        for key, sub in properties.items():
            if isinstance(instance, dict) and "default" in sub and key not in instance:
                instance[key] = copy.deepcopy(sub["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](
            validator, properties, instance, schema
        )

    filling = validators.extend(Draft202012Validator, {"properties": fill_defaults})
    out = copy.deepcopy(config)
    filling(load_schema()).validate(out)
    return out
