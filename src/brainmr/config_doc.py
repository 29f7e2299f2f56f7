"""config/README.md, rendered from the config schema (workflow/schemas/config.schema.yaml): every
key with its type, default and description. ``make config-doc`` rewrites it;
``python -m brainmr.config_doc --check`` fails when it is stale (so does a unit test)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from brainmr.config import load_schema

REPO_ROOT = Path(__file__).resolve().parents[2]  # config_doc writes into the checkout
README_PATH = REPO_ROOT / "config" / "README.md"
SCHEMA_PATH = "workflow/schemas/config.schema.yaml"
NO_DEFAULT = "—"
BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))

HEADER = (
    f"> Generated from `{SCHEMA_PATH}` by `make config-doc`: do not edit by hand "
    "(edit the schema's descriptions, then run `make config-doc`)."
)
INTRO = """\
# Configuration

`config/config.yaml` is the demo that `make demo` runs: a small synthetic ADNI-like cohort and a
tiny Stable-Diffusion-architecture base pretrained locally, so every result it produces is
SYNTHETIC and labelled so. `config/adni.yaml` is the real run, the paper's setting (ADNI2 T1
scans, Stable Diffusion 1.5): fill in its paths marked EDIT, then run Snakemake with
`--configfile config/adni.yaml`. Either file is validated against the schema before the workflow
starts: an unknown key is an error, and a key left out takes the default listed here (a section
left out takes all of its defaults)."""
TABLE_HEAD = "| key | type | default | description |\n|---|---|---|---|"


# ----------------------------------------------------------------------------- walking the schema
def iter_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict, bool]]:
    """(dotted path, spec, required) of every key the schema names, depth first in schema
    order: the keys of ``properties`` and, through an object's ``additionalProperties`` (a map
    of names to objects, such as ``conditions``), the keys of its entries as ``<name>``."""
    required = set(schema.get("required", []))
    for key, spec in (schema.get("properties") or {}).items():
        path = f"{prefix}{key}"
        yield path, spec, key in required
        yield from _children(spec, path)


def _children(spec: dict[str, Any], path: str) -> Iterator[tuple[str, dict, bool]]:
    if spec.get("properties"):
        yield from iter_keys(spec, f"{path}.")
    entry = spec.get("additionalProperties")
    if isinstance(entry, dict) and entry.get("properties"):
        yield from iter_keys(entry, f"{path}.<name>.")


def missing_descriptions(schema: dict[str, Any]) -> list[str]:
    """Dotted paths of the keys whose description is missing or blank."""
    return [
        path
        for path, spec, _ in iter_keys(schema)
        if not str(spec.get("description") or "").strip()
    ]


# ----------------------------------------------------------------------------- rendering
def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    """Table-cell text: one line, pipes escaped (also inside code spans, as GFM wants)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    return f"`{_json(value)}`"


def type_text(spec: dict[str, Any]) -> str:
    """The type column: JSON type(s), array items, enum values and bounds."""
    kind = spec.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    items = spec.get("items")
    if isinstance(items, dict):
        item = type_text(items)
        text = text.replace("array", f"array of {f'({item})' if ', ' in item else item}")
    notes = []
    if "enum" in spec:
        notes.append("one of " + ", ".join(_code(v) for v in spec["enum"]))
    if "minimum" in spec and "maximum" in spec:
        notes.append(f"{spec['minimum']} to {spec['maximum']}")
    else:
        notes += [f"{sign} {spec[key]}" for key, sign in BOUNDS if key in spec]
    n_min, n_max = spec.get("minItems"), spec.get("maxItems")
    if n_min is not None and n_min == n_max:
        notes.append(f"{n_min} items")
    else:
        notes += [f"at least {n_min} item{'s' * (n_min != 1)}"] if n_min else []
        notes += [f"at most {n_max} items"] if n_max is not None else []
    if spec.get("uniqueItems"):
        notes.append("unique")
    if spec.get("minLength"):
        n = spec["minLength"]
        notes.append("non-empty" if n == 1 else f"at least {n} characters")
    return ", ".join([text, *notes])


def default_text(spec: dict[str, Any], required: bool) -> str:
    if "default" in spec:
        return _code(spec["default"])
    return "required" if required else NO_DEFAULT


def _row(path: str, spec: dict[str, Any], required: bool) -> str:
    cells = [
        f"`{path}`",
        type_text(spec),
        default_text(spec, required),
        spec.get("description", ""),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _is_section(spec: dict[str, Any]) -> bool:
    return bool(spec.get("properties")) or isinstance(spec.get("additionalProperties"), dict)


def _section_note(spec: dict[str, Any], required: bool) -> str:
    notes = []
    if "default" in spec:
        notes.append(
            f"Optional: left out, it is `{_json(spec['default'])}` and every key takes its default."
        )
    elif required:
        notes.append("Required.")
    else:
        notes.append("Optional.")
    if isinstance(spec.get("additionalProperties"), dict):
        entries = "A map of names to entries"
        pattern = (spec.get("propertyNames") or {}).get("pattern")
        if pattern:
            entries += f" (names match `{pattern}`)"
        if spec.get("minProperties"):
            entries += f", at least {spec['minProperties']}"
        notes.append(entries + "; `<name>` below stands for each name.")
    return " ".join(notes)


def config_markdown(schema: dict[str, Any]) -> str:
    """The whole config/README.md: the top-level keys, then one heading and table per section."""
    required = set(schema.get("required", []))
    properties = schema.get("properties") or {}
    out = [HEADER, "", INTRO, ""]
    scalars = [(k, s) for k, s in properties.items() if not _is_section(s)]
    if scalars:
        out += ["## Top-level keys", "", TABLE_HEAD]
        out += [_row(k, s, k in required) for k, s in scalars]
        out.append("")
    for key, spec in properties.items():
        if not _is_section(spec):
            continue
        out += [f"## `{key}`", ""]
        description = " ".join(str(spec.get("description", "")).split())
        if description:
            out.append(description[:1].upper() + description[1:] + ".")
            out.append("")
        out += [_section_note(spec, key in required), "", TABLE_HEAD]
        out += [_row(*row) for row in _children(spec, key)]
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- command line
def write_readme(path: Path, schema: dict[str, Any] | None = None) -> None:
    """Write the rendering atomically (a temporary file beside it, then a rename)."""
    text = config_markdown(load_schema() if schema is None else schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def is_current(path: Path, schema: dict[str, Any] | None = None) -> bool:
    text = config_markdown(load_schema() if schema is None else schema)
    return path.is_file() and path.read_text(encoding="utf-8") == text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m brainmr.config_doc",
        description=f"Write {README_PATH.relative_to(REPO_ROOT)} from {SCHEMA_PATH}.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that it is current (exit 1 if stale)"
    )
    args = parser.parse_args(argv)
    readme = README_PATH.relative_to(REPO_ROOT)
    missing = missing_descriptions(load_schema())
    if missing:
        print(f"{SCHEMA_PATH}: keys without a description: {', '.join(missing)}", file=sys.stderr)
    if args.check:
        if is_current(README_PATH):
            print(f"{readme} is current")
            return 1 if missing else 0
        print(
            f"{readme} is stale: it differs from what {SCHEMA_PATH} renders; "
            "run `make config-doc` and commit the result",
            file=sys.stderr,
        )
        return 1
    write_readme(README_PATH)
    print(f"wrote {readme}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
