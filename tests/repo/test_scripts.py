"""Rule scripts are thin adapters that find brainmr with or without an installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# repository checks: subprocesses and whole-tree scans, seconds to tens of seconds each
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("[!_]*.py"))


def isolated_brainmr_file(cwd: Path, path_first: list[str]) -> Path:
    """Where ``import _brainmr_path, brainmr`` finds brainmr in a Python with no site-packages,
    no PYTHONPATH (-I -S, as under `--sdm conda`) and ``path_first`` put before sys.path."""
    code = f"import sys; sys.path[:0] = {path_first!r}; import _brainmr_path, brainmr; "
    proc = subprocess.run(
        [sys._base_executable, "-I", "-S", "-c", code + "print(brainmr.__file__)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def test_brainmr_imports_without_install_or_pythonpath(tmp_path):
    """As under `--sdm conda`: PYTHONPATH cleared and no brainmr installed, from another
    working directory."""
    found = isolated_brainmr_file(tmp_path, [str(REPO / "workflow" / "scripts")])
    assert found == REPO / "src" / "brainmr" / "__init__.py"


def test_this_checkouts_brainmr_wins_over_one_installed_from_elsewhere(tmp_path):
    """Snakemake hands a job its own sys.path, where a brainmr installed from another checkout
    (a shared venv) can stand before this checkout's src/, which is on the path already: the job
    must still import this checkout's brainmr, not run the other checkout's code."""
    other = tmp_path / "other_checkout" / "src" / "brainmr"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    path = [str(other.parent), str(REPO / "src"), str(REPO / "workflow" / "scripts")]
    found = isolated_brainmr_file(tmp_path, path)
    assert found == REPO / "src" / "brainmr" / "__init__.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_rule_script_is_a_thin_adapter(script):
    lines = [line for line in script.read_text().splitlines() if line.strip()]
    assert lines[0] == "import _brainmr_path  # noqa: F401"
    assert any(line.startswith("log_to(snakemake.log[0])") for line in lines)
    assert len(lines) <= 30, f"{script.name}: {len(lines)} lines; logic belongs in brainmr"
