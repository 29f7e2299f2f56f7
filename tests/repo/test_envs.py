"""The conda envs (envs/*.yaml) agree with pyproject.toml's pins, every rule names one, and each
rule's env holds every third-party package its script imports (through brainmr)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

# repository checks: subprocesses and whole-tree scans, seconds to tens of seconds each
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "envs"
RULES = ROOT / "workflow" / "rules"
SRC = ROOT / "src"
EXPECTED_ENVS = ("preprocess", "diffusion", "evaluate")
# Every rule script imports brainmr, which reads its configs with these.
REQUIRED_IN_EVERY_ENV = {"numpy", "pandas", "pyyaml"}
PYTHON = "3.11"

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
# import name -> PyPI name, where they differ.
IMPORT_TO_PYPI = {
    "PIL": "pillow",
    "SimpleITK": "simpleitk",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "markdown_it": "markdown-it-py",
}
# Imported but not pinned: installed as a dependency of a pinned package.
PROVIDED_BY = {
    "joblib": "scikit-learn",
    "tokenizers": "transformers",
    "huggingface_hub": "diffusers",
}

# Never resolved from a rule's env: Snakemake puts its own package on the script's path.
NOT_FROM_ENV = {"snakemake", "brainmr", "__future__"}
# Imports a module makes only when the process already holds the library (or asks for it) or
# that it catches when missing: brainmr.threads caps whatever thread pools a job has loaded;
# 8-bit AdamW is an option for CUDA machines with bitsandbytes (a clear error otherwise).
CONDITIONAL_IMPORTS = {
    SRC / "brainmr" / "threads.py": {"SimpleITK", "threadpoolctl", "torch"},
    SRC / "brainmr" / "diffusion" / "optim.py": {"bitsandbytes"},
}


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, sep, version = requirement.partition("==")
        assert sep, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[normalise(name)] = version.strip()
    return pins


def env_packages(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(conda, pip) packages of an env file as {PyPI name: version}; python and pip left out."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    conda, pip = {}, {}
    for dependency in spec["dependencies"]:
        if isinstance(dependency, dict):
            for requirement in dependency["pip"]:
                name, sep, version = requirement.partition("==")
                assert sep, f"{path.name}: pip entry {requirement!r} is not pinned with =="
                pip[normalise(name)] = version.strip()
            continue
        if dependency == "pip":  # the installer for the pip: section, version free
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*=\s*([^=\s]+)", dependency)
        assert match, f"{path.name}: {dependency!r} is not pinned as name=version"
        name, version = match.groups()
        if name in ("python", "pip"):
            continue
        conda[normalise(CONDA_TO_PYPI.get(name, name))] = version
    return conda, pip


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    return pyproject_pins()


def test_the_three_envs_exist():
    found = {p.stem for p in ENVS.glob("*.yaml")}
    assert set(EXPECTED_ENVS) <= found, f"missing env files: {set(EXPECTED_ENVS) - found}"


@pytest.mark.parametrize("env", EXPECTED_ENVS)
def test_env_is_pinned_to_pyproject(env, pins):
    path = ENVS / f"{env}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert spec["channels"][0] == "conda-forge", f"{path.name}: conda-forge must come first"
    assert f"python={PYTHON}" in spec["dependencies"], f"{path.name}: needs python={PYTHON}"
    conda, pip = env_packages(path)
    both = set(conda) & set(pip)
    assert not both, f"{path.name}: {both} listed for conda and pip"
    for name, version in {**conda, **pip}.items():
        assert name in pins, f"{path.name}: {name} is not a pinned dependency in pyproject.toml"
        assert version == pins[name], (
            f"{path.name}: {name}={version}, pyproject.toml pins {name}=={pins[name]}"
        )
    if pip:
        assert "pip" in spec["dependencies"], f"{path.name}: a pip: section needs pip itself"
    missing = REQUIRED_IN_EVERY_ENV - set(conda) - set(pip)
    assert not missing, f"{path.name}: lacks {missing} (brainmr needs them in every job)"


def test_pin_mismatch_is_caught(tmp_path, pins):
    """The check above can fail: a drifted version and a conda-forge name both resolve."""
    env = tmp_path / "drift.yaml"
    env.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pytorch=0.0.1\n")
    conda, _ = env_packages(env)
    assert conda == {"torch": "0.0.1"} and conda["torch"] != pins["torch"]


def smk_rules() -> dict[str, tuple[Path, str]]:
    """{rule name: (.smk file, rule body text)} for every rule and checkpoint."""
    rules = {}
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        heads = list(re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M))
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            rules[head.group(1)] = (smk, text[head.end() : end])
    return rules


def directive(body: str, name: str) -> str | None:
    """The quoted value of `name:` in a rule body, on the same or the next line."""
    match = re.search(rf"^\s+{name}:\s*\n?\s*[\"']([^\"']+)[\"']", body, flags=re.M)
    return match.group(1) if match else None


def test_rules_were_found():
    rules = smk_rules()
    for name in ("preprocess_scan", "train_dreambooth", "generate_images", "train_classifier"):
        assert name in rules, f"rule {name} not found in workflow/rules/*.smk"


def test_every_rule_has_a_conda_env_that_exists():
    problems = []
    for rule, (smk, body) in smk_rules().items():
        env = directive(body, "conda")
        if env is None:
            problems.append(f"{smk.name}: rule {rule} has no conda: directive")
            continue
        path = (smk.parent / env).resolve()
        if not path.is_file():
            problems.append(f"{smk.name}: rule {rule}: conda env {env} -> {path} does not exist")
        elif path.parent != ENVS.resolve():
            problems.append(f"{smk.name}: rule {rule}: conda env {path} is not under envs/")
    assert not problems, "\n".join(problems)


def module_path(module: str) -> Path | None:
    """The source file of a brainmr module (a package's __init__.py), or None."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in a file (function-level too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (
        ".".join(path.relative_to(SRC).with_suffix("").parts[:-1]) if SRC in path.parents else ""
    )
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside brainmr
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            # `from brainmr.cohort import sets` imports the submodule brainmr.cohort.sets
            names.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if module_path(f"{base}.{alias.name}")
            )
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a rule script imports, following brainmr's own imports."""
    local = {p.stem for p in script.parent.glob("*.py")}
    seen, queue, third_party = set(), [script], set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "brainmr":
                parts = module.split(".")
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                for depth in range(1, len(parts) + 1):
                    found = module_path(".".join(parts[:depth]))
                    if found:
                        queue.append(found)
            elif top in CONDITIONAL_IMPORTS.get(path, set()):
                continue
            elif top not in sys.stdlib_module_names and top not in NOT_FROM_ENV | local:
                third_party.add(top)
    return third_party


def test_import_scan_follows_brainmr(tmp_path):
    """The scan reaches third-party imports made inside brainmr, not only the script's own."""
    script = tmp_path / "adapter.py"
    script.write_text("from brainmr.preprocess.scan import preprocess_scan\nimport numpy\n")
    found = third_party_imports(script)
    assert "numpy" in found and "SimpleITK" in found


def test_conditional_imports_are_made_inside_functions_only():
    """An exempt import is never at module level (where every job would make it), nor stale."""
    for path, exempt in CONDITIONAL_IMPORTS.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            alias.name.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
        }
        imported = {m.split(".")[0] for m in imported_modules(path)}
        assert exempt <= imported, f"{path.name}: exempt but not imported: {exempt - imported}"
        assert not exempt & top_level, f"{path.name} imports {exempt & top_level} at module level"


def rule_scripts() -> list[tuple[str, Path, Path]]:
    out = []
    for rule, (smk, body) in smk_rules().items():
        script, env = directive(body, "script"), directive(body, "conda")
        if script and env:
            out.append((rule, (smk.parent / script).resolve(), (smk.parent / env).resolve()))
    return out


@pytest.mark.parametrize("rule,script,env", rule_scripts(), ids=lambda v: getattr(v, "name", v))
def test_rule_env_holds_what_its_script_imports(rule, script, env):
    conda, pip = env_packages(env)
    available = set(conda) | set(pip)
    missing = set()
    for module in third_party_imports(script):
        dist = normalise(IMPORT_TO_PYPI.get(module, module))
        if dist not in available and PROVIDED_BY.get(module) not in available:
            missing.add(f"{module} ({dist})")
    assert not missing, f"rule {rule} ({script.name}) imports {sorted(missing)}, not in {env.name}"


def test_license_file_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith(f"{project['license']} License")
