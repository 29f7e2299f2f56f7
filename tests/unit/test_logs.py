"""Progress in log files: plain periodic lines; other libraries' bars cut to their last frame."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

from tqdm import tqdm

from brainmr.logs import PROGRESS_ENV, FinalFrameStream, PlainProgress, progress


def test_carriage_return_frames_keep_only_the_final_one():
    out = io.StringIO()
    stream = FinalFrameStream(out)
    for i in range(1000):
        stream.write(f"\rloading {i}/999")
    stream.write("\nplain line\n\r   \r")  # tqdm(leave=False) clears its line on close
    stream.write("half")
    stream.close()
    assert out.getvalue() == "loading 999/999\nplain line\nhalf\n"


def test_a_tqdm_bar_in_a_log_file_is_one_line():
    out = io.StringIO()
    stream = FinalFrameStream(out)
    for _ in tqdm(range(500), file=stream, mininterval=0, desc="weights"):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "500/500" in lines[0] and "\r" not in out.getvalue()


def test_plain_progress_every_ten_percent_with_rate_and_time_left(caplog):
    caplog.set_level(logging.INFO, logger="brainmr.progress")
    bar = PlainProgress(range(200), desc="DreamBooth brain", unit="step", every=0)
    for step in bar:
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # 10%, 20%, ... 90%, and the closing line
    assert lines[0].startswith("DreamBooth brain: 20/200 step (10%), loss=")
    assert "step/s" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("DreamBooth brain: 200/200 step (100%)")
    assert lines[-1].endswith("(done)")


def test_plain_progress_resumes_from_initial_and_by_time(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="brainmr.progress")
    clock = iter(range(0, 10_000, 40))  # 40 s between calls: every update is due
    monkeypatch.setattr("brainmr.logs.time.monotonic", lambda: next(clock))
    bar = PlainProgress(range(150, 153), total=1000, initial=150, desc="x", unit="step", every=30)
    list(bar)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("x: 151/1000 step (15%)")
    assert len(lines) == 4  # three timed lines and the closing one (not done: no "(done)")
    assert not lines[-1].endswith("(done)")


def test_progress_is_plain_in_a_log_file_and_a_bar_on_a_terminal(tmp_path):
    script = (
        "import sys\n"
        "from brainmr.logs import log_to, progress\n"
        f"log_to({str(tmp_path / 'job.log')!r})\n"
        "bar = progress(range(1000), desc='generate', unit='img')\n"
        "print(type(bar).__name__)\n"
        "for _ in bar: pass\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "PlainProgress", done.stderr
    text = (tmp_path / "job.log").read_text()
    assert "\r" not in text and len(text.splitlines()) <= 11 and len(text) < 2000
    assert type(progress(range(3))).__name__ == "PlainProgress"  # pytest's stderr: no TTY


def test_log_to_takes_the_progress_interval_from_the_jobs_config(tmp_path):
    """Snakemake's preamble puts the job's `snakemake` object in the script's globals."""
    script = (
        "import os, types\n"
        "snakemake = types.SimpleNamespace(config={'progress_interval_s': 7})\n"
        "from brainmr.logs import log_to, progress_seconds\n"
        f"log_to({str(tmp_path / 'job.log')!r})\n"
        "print(progress_seconds())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != PROGRESS_ENV}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "7.0", done.stderr
