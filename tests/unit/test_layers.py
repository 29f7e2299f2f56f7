"""The package's stages import downward only: cohort and preprocess before diffusion, diffusion
before evaluate, evaluate before report (which only formats); the shared modules at the top
(brainmr.io, config, seeds, ...) import no stage. Inside evaluate, its rooms too: the shared
modules (config, images, ceiling, toy), then stats, judges, table1, studies. A module-level
import that points the other way is a failure (function-level imports too: they are imports
all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "brainmr"
# stage -> the stages it may import (besides itself and the shared top-level modules)
ALLOWED = {
    "cohort": {"preprocess"},
    "preprocess": set(),
    "diffusion": {"cohort", "preprocess"},
    "evaluate": {"cohort", "preprocess", "diffusion"},
    "report": {"cohort", "evaluate"},
}
STAGES = set(ALLOWED)
# evaluate's sub-packages, lowest first: each may import the ones before it (and evaluate's
# shared top-level modules), never one after it
ROOMS = ["stats", "judges", "table1", "studies"]


def imported_names(path: Path) -> list[list[str]]:
    """Every dotted name a file imports (modules and the names taken from them), split."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return [name.split(".") for name in names]


def stage_imports(path: Path) -> set[str]:
    """The brainmr stages a file imports."""
    return {
        parts[1]
        for parts in imported_names(path)
        if parts[0] == "brainmr" and len(parts) > 1 and parts[1] in STAGES
    }


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "schemas" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downward(path):
    rel = path.relative_to(PACKAGE)
    stage = rel.parts[0] if len(rel.parts) > 1 else None
    allowed = (ALLOWED[stage] | {stage}) if stage else set()
    wrong = stage_imports(path) - allowed
    assert not wrong, f"brainmr/{rel} ({stage or 'shared'}) imports stage(s) {sorted(wrong)}"


def test_the_check_sees_an_upward_import(tmp_path):
    upward = tmp_path / "bad.py"
    upward.write_text("def f():\n    from brainmr.report.table1 import COLUMNS\n")
    assert stage_imports(upward) == {"report"}


def room_imports(path: Path) -> set[str]:
    """The evaluate sub-packages (ROOMS) a file imports."""
    return {
        parts[2]
        for parts in imported_names(path)
        if parts[:2] == ["brainmr", "evaluate"] and len(parts) > 2 and parts[2] in ROOMS
    }


def evaluate_modules():
    return sorted((PACKAGE / "evaluate").rglob("*.py"))


@pytest.mark.parametrize(
    "path", evaluate_modules(), ids=lambda p: str(p.relative_to(PACKAGE / "evaluate"))
)
def test_evaluate_rooms_import_downward(path):
    rel = path.relative_to(PACKAGE / "evaluate")
    room = rel.parts[0] if len(rel.parts) > 1 else None
    allowed = set(ROOMS[: ROOMS.index(room) + 1]) if room else set()
    wrong = room_imports(path) - allowed
    assert not wrong, f"evaluate/{rel} ({room or 'shared'}) imports room(s) {sorted(wrong)}"


def test_every_evaluate_module_is_in_a_room_or_shared():
    shared = {p.stem for p in (PACKAGE / "evaluate").glob("*.py")}
    assert shared == {"__init__", "config", "images", "ceiling", "toy"}
    assert {p.name for p in (PACKAGE / "evaluate").iterdir() if p.is_dir()} - {
        "__pycache__"
    } == set(ROOMS)


def test_the_room_check_sees_an_upward_import(tmp_path):
    upward = tmp_path / "bad.py"
    upward.write_text("from brainmr.evaluate.studies.remedies import summarise\n")
    assert room_imports(upward) == {"studies"}
