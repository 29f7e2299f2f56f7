"""The local scheduler keeps to ``--cores``: the pinned Snakemake must not start more one-thread
jobs than cores once a shared upstream job finishes. Snakemake 9.10-9.15 did (snakemake issue 3913):
the demo ran 5 DreamBooth jobs at once on 2 cores, each at a fraction of its speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(6))

rule base:
    output: "base.txt"
    threads: 1
    shell: "touch {output}"

rule fan_out:
    input: "base.txt"
    output: "out/{i}.txt"
    threads: 1
    shell: "date +%s.%N > {output}; sleep 1.5; date +%s.%N >> {output}"
"""


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def test_most_at_once_counts_overlaps():
    assert most_at_once([(0, 1), (1, 2), (2, 3)]) == 1
    assert most_at_once([(0, 3), (1, 2), (1.5, 4)]) == 3


def test_local_runs_never_exceed_cores(tmp_path: Path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        [snakemake, "--cores", "2", "-d", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    intervals = [
        tuple(float(t) for t in f.read_text().split()) for f in (tmp_path / "out").glob("*.txt")
    ]
    assert len(intervals) == 6
    assert most_at_once(intervals) == 2  # two at a time: not fewer (no parallelism), not more
