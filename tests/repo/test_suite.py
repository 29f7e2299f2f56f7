"""The suite's own plumbing: `make test` runs the tests that read the shared end-to-end run in one
session (marked e2e by tests/conftest.py, so the run happens once) beside the rest of the suite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import E2E, REPO

# repository checks: subprocesses and whole-tree scans, seconds to tens of seconds each
pytestmark = pytest.mark.slow

# Collects the suite and prints, per test, whether it reads small_run and whether it is marked e2e
COLLECT = f"""
import json, sys, pytest
class Readers:
    def pytest_collection_finish(self, session):
        rows = [[i.nodeid, "small_run" in i.fixturenames, i.get_closest_marker("{E2E}") is not None]
                for i in session.items]
        print("ITEMS " + json.dumps(rows))
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                      "tests/workflow", "tests/slurm"], plugins=[Readers()]))
"""


def test_every_reader_of_the_shared_run_is_marked_and_no_other_test_is():
    out = subprocess.run(
        [sys.executable, "-c", COLLECT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("ITEMS "))
    items = json.loads(line.removeprefix("ITEMS "))
    readers = [node for node, reads, _ in items if reads]
    assert "tests/workflow/test_workflow.py::test_end_to_end_small_run" in readers
    assert len(readers) > 1  # the SLURM checks read it too
    assert all(marked == reads for _, reads, marked in items), items
    assert any(not reads for _, reads, _ in items)  # dry runs and lint stay in the other session


def test_make_test_runs_the_two_sessions_side_by_side():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest: setup\n", 1)[1].split("\n\n", 1)[0]
    assert f"-m {E2E}" in recipe and f'-m "not {E2E}"' in recipe and "wait" in recipe
