"""Make ``brainmr`` importable in every job: from the project's venv (installed) and under
``--sdm conda``, where Snakemake clears PYTHONPATH (the repo's src/ is put on sys.path)."""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
