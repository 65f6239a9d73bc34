"""The live view of a running sweep: done / running / failed / remaining, a bar, and the runs in progress.

The view reads the results folder (result files, locks, failure records), not the executor, so it shows the same
thing for local workers and Slurm jobs, and counts runs that another sweep sharing the folder is training.
Each run that finishes or fails while the view is open is also printed as a line above it, which is what remains
in a log when stderr is not a terminal.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mer_bench.runspec import RunSpec
from mer_bench.sweep.store import RunState, lock_started, read_failure, scan

MAX_RUNNING_SHOWN = 8


class SweepView:
    def __init__(self, specs: list[RunSpec], out_dir: Path, console: Console, min_interval_s: float = 1.0):
        self.specs, self.out_dir, self.console = list(specs), out_dir, console
        self.states = scan(self.specs, out_dir)
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._live = Live(self._render(), console=console, refresh_per_second=2, transient=False)

    def __enter__(self) -> SweepView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.refresh(force=True)
        self._live.__exit__(*exc)
        if not self.console.is_terminal:
            self.console.line()   # rich ends its last frame with a newline on terminals only

    def refresh(self, force: bool = False) -> None:
        """Rescan the results folder (at most once per `min_interval_s` unless forced) and redraw."""
        if not force and time.monotonic() - self._last < self.min_interval_s:
            return
        self._last = time.monotonic()
        states = scan(self.specs, self.out_dir)
        for spec, state in states.items():
            if state is not self.states[spec]:
                self._announce(spec, state)
        self.states = states
        self._live.update(self._render())

    def counts(self) -> Counter:
        return Counter(self.states.values())

    def _announce(self, spec: RunSpec, state: RunState) -> None:
        if state is RunState.DONE:
            self._live.console.print(f"done    {spec.run_id}", markup=False, highlight=False)
        elif state is RunState.FAILED:
            error = (read_failure(spec, self.out_dir) or {}).get("error", "?")
            self._live.console.print(f"FAILED  {spec.run_id}: {error.splitlines()[0] if error else '?'}",
                                     markup=False, highlight=False)

    def _render(self) -> Group:
        counts, total = self.counts(), len(self.specs)
        finished = counts[RunState.DONE] + counts[RunState.FAILED]
        line = Text.assemble(
            (f"{counts[RunState.DONE]} done", "green"), "  ", (f"{counts[RunState.RUNNING]} running", "cyan"), "  ",
            (f"{counts[RunState.FAILED]} failed", "red" if counts[RunState.FAILED] else ""), "  ",
            f"{counts[RunState.REMAINING]} remaining  (of {total})")
        header = Table.grid(padding=(0, 2))   # a grid ends its line; a bare ProgressBar would run into the next
        header.add_row(ProgressBar(total=max(total, 1), completed=finished, width=40), line)
        parts: list = [header]
        running = [spec for spec, state in self.states.items() if state is RunState.RUNNING]
        if running:
            parts.append(self._running_table(running))
        return Group(*parts)

    def _running_table(self, running: list[RunSpec]) -> Table:
        table = Table("running", "for", box=None, show_header=False, padding=(0, 2, 0, 0))
        now = time.time()
        for spec in running[:MAX_RUNNING_SHOWN]:
            started = lock_started(spec, self.out_dir)
            table.add_row(spec.run_id, "" if started is None else format_seconds(now - started))
        if len(running) > MAX_RUNNING_SHOWN:
            table.add_row(f"... and {len(running) - MAX_RUNNING_SHOWN} more", "")
        return table


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
