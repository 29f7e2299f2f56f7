"""The installed package is whole: a wheel of brainmr (not an editable install) carries its config
schema and validates the demo config, from a folder with no workflow beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# repository checks: subprocesses and whole-tree scans, seconds to tens of seconds each
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_wheel_install_validates_the_demo_config(tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("brainmr-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "brainmr/schemas/config.schema.yaml").is_file()
    script = (
        "import sys, yaml, brainmr\n"
        f"assert brainmr.__file__.startswith({str(target)!r}), brainmr.__file__\n"
        "from brainmr.validate import validate_config\n"
        f"config = validate_config(yaml.safe_load(open({str(REPO / 'config/config.yaml')!r})))\n"
        "assert config['evaluate']['ood_fraction'] == 0.5\n"
        "import jsonschema\n"
        "try:\n"
        "    validate_config(config | {'seeds': 'three'})\n"
        "except jsonschema.ValidationError as err:\n"
        "    print('refused:', err.message)\n"
    )
    env = os.environ | {"PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "refused: 'three' is not of type 'array'" in out.stdout
