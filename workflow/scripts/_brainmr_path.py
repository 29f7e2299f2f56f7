"""Make ``brainmr`` importable in every job: from the project's venv (installed) and under
``--sdm conda``, where Snakemake clears PYTHONPATH. The workflow's own src/ goes first, even
where it is on sys.path already: Snakemake hands jobs its own sys.path, in which a brainmr
installed from another checkout can come before this one's, and the job would run that code."""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
sys.path[:] = [SRC] + [entry for entry in sys.path if entry != SRC]
