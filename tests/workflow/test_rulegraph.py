"""The rule graph in the README (docs/rulegraph.dot, rendered to docs/rulegraph.png) is current."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO, SNAKEMAKE


def rule_edges(dot: str) -> set[tuple[str, str]]:
    """(upstream rule, downstream rule) pairs; node numbers differ between runs, names do not."""
    labels = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    return {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}


def test_committed_rulegraph_matches_workflow():
    proc = subprocess.run(
        [SNAKEMAKE, "--rulegraph"],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    )
    fresh = rule_edges(proc.stdout)
    committed = rule_edges((REPO / "docs/rulegraph.dot").read_text())
    assert ("train_dreambooth", "generate_images") in fresh
    assert fresh == committed, "docs/rulegraph.dot is stale: run `make rulegraph`"
    assert (REPO / "docs/rulegraph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
