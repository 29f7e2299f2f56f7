"""The suite's own plumbing: under pytest -n the shared end-to-end run happens once, because every
test that reads it is in the one unit of work tests/conftest.py hands to a single worker."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, work_unit

# Collects the workflow and SLURM tests and prints the node ids of those that use small_run
READERS = """
import json, sys, pytest
class Readers:
    def pytest_collection_finish(self, session):
        used = [i.nodeid for i in session.items if "small_run" in i.fixturenames]
        print("READERS " + json.dumps(used))
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                      "tests/workflow", "tests/slurm"], plugins=[Readers()]))
"""


def test_every_reader_of_the_shared_run_is_in_its_unit_of_work():
    out = subprocess.run(
        [sys.executable, "-c", READERS], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("READERS "))
    readers = json.loads(line.removeprefix("READERS "))
    assert "tests/workflow/test_workflow.py::test_end_to_end_small_run" in readers
    assert len(readers) > 1  # the SLURM checks read it too
    assert {work_unit(n) for n in readers} == {"small_run"}


def test_other_tests_are_units_of_their_own():
    other = "tests/workflow/test_workflow.py::test_third_condition_is_a_config_edit"
    assert work_unit(other) == other
    assert work_unit("tests/slurm/test_slurm.py::test_profile_is_valid") == "small_run"
