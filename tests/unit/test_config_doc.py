"""config/README.md documents every config key, and is what the schema renders today."""

from __future__ import annotations

import pytest

from brainmr import config_doc
from brainmr.config import load_schema
from brainmr.config_doc import README_PATH, config_markdown, iter_keys, missing_descriptions


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema()


@pytest.fixture(scope="module")
def rendered(schema) -> str:
    return config_markdown(schema)


def _row(markdown: str, key: str) -> list[str]:
    """The cells of the table row of one dotted key."""
    rows = [line for line in markdown.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"expected one row for {key}, found {len(rows)}"
    return [cell.strip() for cell in rows[0].strip("|").split(" | ")]


def test_every_schema_key_has_a_description(schema):
    missing = missing_descriptions(schema)
    assert not missing, f"config schema keys without a description: {', '.join(missing)}"


def test_keys_are_walked_recursively(schema):
    paths = {path for path, _, _ in iter_keys(schema)}
    assert {"run_label", "cohort", "cohort.source", "dreambooth.lora_rank"} <= paths
    assert "conditions.<name>.AD" in paths  # entries of a map of named objects


def test_readme_is_current(schema):
    assert README_PATH.is_file(), "config/README.md is missing: run `make config-doc`"
    assert README_PATH.read_text(encoding="utf-8") == config_markdown(schema), (
        "config/README.md is stale (the config schema changed): run `make config-doc`"
    )


def test_rendering_lists_nested_keys_with_type_and_default(rendered):
    assert rendered.startswith("> Generated from `workflow/schemas/config.schema.yaml`")
    assert "`make config-doc`" in rendered.splitlines()[0]
    assert "`config/config.yaml`" in rendered and "`config/adni.yaml`" in rendered
    key, kind, default, description = _row(rendered, "dreambooth.lora_rank")
    assert (kind, default) == ("integer, ≥ 0", "`0`")
    assert "LoRA" in description
    assert "## `dreambooth`" in rendered


def test_rendering_shows_enum_values_required_and_missing_defaults(rendered):
    _, kind, default, _ = _row(rendered, "generate.mixed_precision")
    assert kind == 'string, one of `"no"`, `"fp16"`, `"bf16"`'
    assert default == '`"no"`'
    assert _row(rendered, "cohort.source")[2] == "required"
    assert _row(rendered, "conditions.<name>.AD")[2] == "required"
    assert _row(rendered, "conditions.<name>.label")[2] == config_doc.NO_DEFAULT
    # a pipe inside a cell is escaped, so the table keeps four columns
    assert _row(rendered, "cohort.description_pattern")[2] == r'`"MPRAGE\|MP-RAGE\|SPGR\|IR-FSPGR"`'


def test_missing_descriptions_names_the_undocumented_keys():
    schema = {
        "type": "object",
        "properties": {
            "documented": {"type": "integer", "description": "fine"},
            "bare": {"type": "integer", "default": 1},
            "section": {
                "type": "object",
                "description": "a section",
                "properties": {
                    "blank": {"type": "string", "description": "  "},
                    "ok": {"type": "string", "description": "fine"},
                },
            },
            "named": {
                "type": "object",
                "description": "a map",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"prompt": {"type": "string"}},
                },
            },
        },
    }
    assert missing_descriptions(schema) == ["bare", "section.blank", "named.<name>.prompt"]


def test_check_flag_reports_a_stale_readme(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "README.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(config_doc, "README_PATH", stale)
    monkeypatch.setattr(config_doc, "REPO_ROOT", tmp_path)
    assert config_doc.main(["--check"]) == 1
    assert "make config-doc" in capsys.readouterr().err
    assert config_doc.main([]) == 0
    assert config_doc.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == config_markdown(load_schema())
