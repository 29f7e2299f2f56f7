"""Stage configs come from the validated config: the JSON schema (workflow/schemas, shipped in
the package as brainmr/schemas) is the only source of defaults. ``schema_defaults`` gives a
section's defaults, for tests and benchmarks (``brainmr.validate`` checks a whole config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
T = TypeVar("T")


def load_schema(name: str = "config") -> dict[str, Any]:
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text(encoding="utf-8"))


def schema_defaults(section: str) -> dict[str, Any]:
    """The defaults the config schema declares for one section."""
    props = load_schema()["properties"][section]["properties"]
    return {key: spec["default"] for key, spec in props.items() if "default" in spec}


def replicate_seed_default() -> int:
    """The first replicate seed of the schema's default ``seeds``."""
    return int(load_schema()["properties"]["seeds"]["default"][0])


def stage_config(cls: type[T], section: str, **overrides: Any) -> T:
    """Build a stage dataclass from the schema's defaults plus overrides (tests, benchmarks).
    A stage seeded per replicate (DreamBooth, generation) takes the first default seed."""
    values = {"seed": replicate_seed_default()} | schema_defaults(section) | overrides
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def fields_of(cls: type) -> list[str]:
    """The config keys a stage reads (what its rule passes as params)."""
    return [f.name for f in dataclasses.fields(cls)]


def from_section(cls: type, section: dict[str, Any], **overrides: Any):
    """A stage config from a (validated) config section, ignoring other stages' keys."""
    names = set(fields_of(cls))
    return cls(**{k: v for k, v in (section | overrides).items() if k in names})
