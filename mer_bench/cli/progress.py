"""Progress of `mer-bench run` and `reproduce`: live bars in a terminal, timestamped lines everywhere else.

Both reporters implement the model-facing `mer_bench.model.Progress` protocol (`start_stage`, `advance`) plus the
runner's callbacks (`start_run`, `waiting`, `finish_run`). A live display draws nothing when stderr is a file or a
pipe (under Slurm, `> log 2>&1`), so there the plain reporter writes lines instead: one at each stage's start and
end, and in between at most one per `interval_s` per stage, each flushed at once.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from mer_bench.cli.console import stderr as status_console

if TYPE_CHECKING:
    from mer_bench.runner import RunOutcome
    from mer_bench.runspec import RunSpec

INTERVAL_VARIABLE = "MER_BENCH_PROGRESS_INTERVAL"   # seconds between plain progress lines of one stage
DEFAULT_INTERVAL_S = 15.0
# What one step of a stage is, where it is not a training epoch.
STEP_NOUNS = {"probes": "condition", "frozen BERT features": "split"}


def make_progress(specs: Sequence[RunSpec]) -> RichProgress | PlainProgress:
    """Bars when stderr is a terminal, else plain lines (at the interval $MER_BENCH_PROGRESS_INTERVAL says)."""
    if status_console.is_terminal:
        return RichProgress(specs)
    return PlainProgress(specs, sys.stderr, interval_s=plain_interval())


def plain_interval() -> float:
    text = os.environ.get(INTERVAL_VARIABLE, "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S   # a progress setting never stops a run


def status_text(status: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4g}" for key, value in status.items())


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RunClock:
    """Which run of how many is going, and an estimate of the time the remaining runs need (from finished ones)."""

    def __init__(self, specs: Sequence[RunSpec]):
        self.specs = list(specs)
        self.index = 0
        self.run_started = time.monotonic()
        self.trained_seconds: list[float] = []   # wall time of each run trained so far (reused runs take none)

    def start(self, spec: RunSpec) -> str:
        """The run's label, e.g. 'cmc on sims-v2, seed 2 of 5 (1112)'."""
        self.index = self.specs.index(spec) + 1 if spec in self.specs else self.index + 1
        self.run_started = time.monotonic()
        return f"{spec.model} on {spec.dataset}, seed {self.index} of {len(self.specs)} ({spec.seed})"

    def finish(self, trained: bool) -> float:
        seconds = time.monotonic() - self.run_started
        if trained:
            self.trained_seconds.append(seconds)
        return seconds

    def time_left(self) -> float | None:
        """Seconds the rest of this run and the runs after it should take, or None before any run finished."""
        if not self.trained_seconds:
            return None
        per_run = sum(self.trained_seconds) / len(self.trained_seconds)
        runs_left = len(self.specs) - self.index + 1
        return max(0.0, per_run * runs_left - (time.monotonic() - self.run_started))


class RichProgress:
    """A bar per training stage on stderr, with the run (seed k of N), stage time left and the whole run's."""

    def __init__(self, specs: Sequence[RunSpec] = ()) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                             TextColumn("{task.fields[status]}"), console=status_console, transient=True)
        self._clock = RunClock(specs)
        self._run = ""
        self._task = None

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def start_run(self, spec: RunSpec) -> None:
        self._run = self._clock.start(spec)
        self._replace_task(f"{self._run}: loading", None)

    def waiting(self, spec: RunSpec, holder: str) -> None:
        status_console.print(f"{self._run}: another process is training this run ({holder}); waiting for it, "
                             "then its result is reused", markup=False, highlight=False, soft_wrap=True)

    def start_stage(self, name: str, total: int | None) -> None:
        left = self._clock.time_left()
        overall = f" (all seeds: about {format_seconds(left)} left)" if left is not None else ""
        self._replace_task(f"{self._run}: {name}{overall}", total)

    def advance(self, **status: float) -> None:
        if self._task is not None:
            self._bar.update(self._task, advance=1, status=status_text(status))

    def finish_run(self, outcome: RunOutcome) -> None:
        self._clock.finish(trained=not outcome.skipped)
        self._replace_task(None, None)
        done = f"done in {outcome.result.timings.get('total', 0):.1f}s"
        status_console.print(f"{self._run}: {'skipped (result exists)' if outcome.skipped else done}",
                             markup=False, highlight=False, soft_wrap=True)

    def _replace_task(self, description: str | None, total: int | None) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
        if description is not None:
            self._task = self._bar.add_task(description, total=total, status="")


class PlainProgress:
    """Timestamped lines for logs: stage start and end always, steps at most once per `interval_s` per stage."""

    def __init__(self, specs: Sequence[RunSpec] = (), stream: TextIO | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._stream = stream or sys.stderr
        self._interval_s = interval_s
        self._clock = RunClock(specs)
        self._run = ""
        self._stage: str | None = None
        self._total: int | None = None
        self._steps = 0
        self._stage_started = self._last_line = time.monotonic()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self._end_stage()
        # else the error line that follows says how the stage ended; "finished" would be wrong

    def start_run(self, spec: RunSpec) -> None:
        # No line yet: a run refused while its data loads ends with one error line and nothing else.
        self._run = self._clock.start(spec)

    def waiting(self, spec: RunSpec, holder: str) -> None:
        self._line(f"{self._run}: another process is training this run ({holder}); waiting for it, then its result "
                   "is reused")

    def start_stage(self, name: str, total: int | None) -> None:
        self._end_stage()
        self._stage, self._total, self._steps = name, total, 0
        self._stage_started = self._last_line = time.monotonic()
        left = self._clock.time_left()
        noun = STEP_NOUNS.get(name, "epoch")
        self._line(f"{self._run}: {name}: started" + (f" ({total} {noun}s at most)" if total else "")
                   + (f"; all seeds: about {format_seconds(left)} left" if left is not None else ""))

    def advance(self, **status: float) -> None:
        self._steps += 1
        now = time.monotonic()
        if now - self._last_line < self._interval_s:
            return
        self._last_line = now
        of_total = f"/{self._total}" if self._total else ""
        extra = f"  {status_text(status)}" if status else ""
        noun = STEP_NOUNS.get(self._stage or "", "epoch")
        self._line(f"{self._run}: {self._stage}: {noun} {self._steps}{of_total}{extra}  "
                   f"elapsed {format_seconds(now - self._stage_started)}")

    def finish_run(self, outcome: RunOutcome) -> None:
        self._end_stage()
        seconds = self._clock.finish(trained=not outcome.skipped)
        self._line(f"{self._run}: " + ("skipped (result exists)" if outcome.skipped
                                       else f"done in {seconds:.1f}s"))

    def _end_stage(self) -> None:
        if self._stage is None:
            return
        elapsed = format_seconds(time.monotonic() - self._stage_started)
        noun = STEP_NOUNS.get(self._stage, "epoch")
        self._line(f"{self._run}: {self._stage}: finished after {self._steps} {noun}(s) in {elapsed}")
        self._stage = None

    def _line(self, text: str) -> None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self._stream.write(f"{stamp} {text}\n")
        self._stream.flush()
