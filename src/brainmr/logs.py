"""Logging for workflow jobs: logging, warnings and progress all go to the job's log.

Progress: on a terminal a tqdm bar; in a log file (Snakemake, SLURM) one plain line every
``BRAINMR_PROGRESS_SECONDS`` seconds (in a workflow job: config ``progress_interval_s``)
or every 10 percent, with the step, the loss where there is one, the rate and the time left.
Progress bars of other libraries (diffusers, transformers) keep only their final frame in a log
file, so a log holds lines that ``tail`` and ``less`` can read, not thousands of ``\\r`` updates."""

from __future__ import annotations

import io as _io
import logging
import os
import sys
import time
from pathlib import Path

PROGRESS_ENV = "BRAINMR_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 30.0
PERCENT_STEP = 10
log = logging.getLogger("brainmr.progress")


class FinalFrameStream(_io.TextIOBase):
    """A text stream for a log file that writes each line's final ``\\r`` frame only: a progress
    bar redrawn a thousand times with carriage returns becomes the one line it ended on."""

    def __init__(self, target):
        self.target, self.pending = target, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            final = line.rsplit("\r", 1)[-1]
            if final.strip():
                self.target.write(final + "\n")
        self.pending = self.pending.rsplit("\r", 1)[-1]
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self.pending.strip():
            self.target.write(self.pending + "\n")
        self.pending = ""
        self.target.flush()


def log_to(path: str | Path, level: int = logging.INFO) -> None:
    """Send this process's logging and stderr to ``path`` (Snakemake's ``log:`` file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    sys.stderr = FinalFrameStream(stream)
    logging.basicConfig(
        level=level,
        stream=stream,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    # In a Snakemake job the interval comes from the run's config (progress_interval_s): the
    # script's preamble puts the job's `snakemake` object in the script's own globals
    job = getattr(sys.modules.get("__main__"), "snakemake", None)
    interval = getattr(job, "config", {}).get("progress_interval_s") if job is not None else None
    if interval is not None:
        os.environ[PROGRESS_ENV] = str(interval)


def progress_seconds() -> float:
    try:
        return max(float(os.environ.get(PROGRESS_ENV, DEFAULT_PROGRESS_SECONDS)), 0.0)
    except ValueError:
        return DEFAULT_PROGRESS_SECONDS


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class PlainProgress:
    """The part of tqdm's interface the package uses (iteration, update, set_postfix, close, a
    context manager), writing a plain log line now and then instead of a redrawn bar."""

    def __init__(self, iterable=None, *, total=None, desc="", unit="it", initial=0, every=None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else _length(iterable)
        self.n = self.start_n = initial
        self.every = progress_seconds() if every is None else every
        self.started = self.last = time.monotonic()
        self.next_percent = PERCENT_STEP
        if self.total:
            done = 100 * initial / self.total
            self.next_percent = (int(done) // PERCENT_STEP + 1) * PERCENT_STEP
        self.postfix: dict = {}
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "")]
        parts[0] += f" {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"{_duration((self.total - self.n) / rate)} left")
        parts.append(f"elapsed {_duration(elapsed)}")
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        percent = 100 * self.n / self.total if self.total else 0.0
        due = self.every > 0 and now - self.last >= self.every
        if due or (self.total and percent >= self.next_percent and self.n < self.total):
            log.info(self.line())
            self.last = now
            while self.total and self.next_percent <= percent:
                self.next_percent += PERCENT_STEP

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            log.info(self.line() + " (done)" if self.n >= (self.total or 0) else self.line())


def _length(iterable):
    try:
        return len(iterable)
    except TypeError:
        return None


def progress(iterable=None, *, total=None, desc="", unit="it", initial=0, leave=True):
    """A tqdm bar on a terminal, plain periodic log lines otherwise."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
