"""Rerun a result file's recorded run and say whether today's code gives the same numbers.

A result file is only worth publishing if the command it records gives it back. `reproduce` reruns the recorded spec
with the recorded environment settings that change floating-point results (torch threads, device, the same data by
checksum), writes the rerun into another folder (never over the original), and compares every recorded number:
per-sample test predictions, every metric of every split and subset, the probes and the parameter count. Timings,
dates and the environment record are expected to differ and are not compared; the environment is reported instead,
so a drift names the versions and commits on both sides.

Verdicts: "exact" (every compared value bit for bit), "float-noise" (no difference above `FLOAT_NOISE`, and every
non-numeric value equal) and "different".
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mer_bench.data.loading import load_dataset
from mer_bench.data.split import MERData
from mer_bench.errors import UserError
from mer_bench.model import NullProgress, Progress
from mer_bench.plugins import Catalog, get_catalog
from mer_bench.results import RunResult, read_result
from mer_bench.runner import RunOptions, run_one

# Largest absolute difference still called float noise: far below any metric's resolution (one sample of 10k test
# samples moves an accuracy by 1e-4) yet above the last-bit changes of a reordered float32 sum (~1e-7 on values of
# magnitude <= 3, the range of scores and probabilities).
FLOAT_NOISE = 1e-6

# The parts of a result file that a rerun must give back; the rest (timings, created, environment, command) is
# about the run, not its numbers.
COMPARED = ("predictions", "metrics", "probes", "parameters")

# Environment entries shown side by side in every report (others are listed only when they differ).
ENVIRONMENT_SHOWN = ("git_commit", "mer_bench", "plugin", "torch", "numpy", "python", "torch_threads", "device",
                     "device_name", "platform")

EXIT_STATUS = {"exact": 0, "float-noise": 0, "different": 1}


@dataclass(frozen=True)
class Difference:
    """One recorded value that the rerun did not give back bit for bit."""

    where: str          # path in the result file, e.g. "metrics/test/all/classification/acc3"
    recorded: Any
    current: Any

    @property
    def size(self) -> float:
        """|current - recorded| for two numbers; infinite for anything else (a missing entry, a changed id)."""
        if _is_number(self.recorded) and _is_number(self.current):
            return abs(float(self.current) - float(self.recorded))
        return math.inf

    def describe(self) -> str:
        size = "" if math.isinf(self.size) else f" (|diff| {self.size:.3g})"
        return f"{self.where}: recorded {_short(self.recorded)}, now {_short(self.current)}{size}"


@dataclass(frozen=True)
class Comparison:
    """Every difference between two result records over the compared parts, and how many values were compared."""

    differences: list[Difference]
    compared: int

    @property
    def max_abs_diff(self) -> float:
        return max((difference.size for difference in self.differences), default=0.0)

    @property
    def verdict(self) -> str:
        if not self.differences:
            return "exact"
        return "float-noise" if self.max_abs_diff <= FLOAT_NOISE else "different"

    def largest(self, prefix: str, count: int) -> list[Difference]:
        """The `count` largest differences under `prefix` (e.g. "metrics/"), largest first."""
        chosen = [difference for difference in self.differences if difference.where.startswith(prefix)]
        return sorted(chosen, key=lambda difference: -difference.size)[:count]


@dataclass(frozen=True)
class Reproduction:
    """What `reproduce` found: the original and rerun files, the comparison and both environments."""

    original: Path
    rerun: Path | None                 # None when the rerun was written to a temporary folder, since removed
    run_id: str
    comparison: Comparison
    recorded_environment: dict[str, Any]
    current_environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)   # differences that explain rather than decide (model config)

    @property
    def verdict(self) -> str:
        return self.comparison.verdict

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    def environment_changes(self) -> dict[str, tuple[Any, Any]]:
        """{entry: (recorded, current)} for every environment entry that differs."""
        keys = list(dict.fromkeys([*ENVIRONMENT_SHOWN, *self.recorded_environment, *self.current_environment]))
        return {key: (self.recorded_environment.get(key), self.current_environment.get(key)) for key in keys
                if self.recorded_environment.get(key) != self.current_environment.get(key)}

    def to_json_dict(self) -> dict[str, Any]:
        comparison = self.comparison
        return {
            "verdict": self.verdict, "exit_status": self.exit_status, "run_id": self.run_id,
            "original": str(self.original), "rerun": None if self.rerun is None else str(self.rerun),
            "compared_values": comparison.compared, "differing_values": len(comparison.differences),
            "max_abs_diff": None if math.isinf(comparison.max_abs_diff) else comparison.max_abs_diff,
            "largest_differences": [
                {"where": d.where, "recorded": d.recorded, "current": d.current,
                 "abs_diff": None if math.isinf(d.size) else d.size}
                for d in [*comparison.largest("metrics/", 10), *comparison.largest("predictions/", 10),
                          *comparison.largest("probes/", 5), *comparison.largest("parameters", 1)]],
            "environment": {"recorded": self.recorded_environment, "current": self.current_environment,
                            "changed": {key: {"recorded": old, "current": new}
                                        for key, (old, new) in self.environment_changes().items()}},
            "notes": self.notes,
        }


# --- comparing two result records ------------------------------------------------------------------------------

def compare_records(recorded: dict[str, Any], current: dict[str, Any]) -> Comparison:
    """Compare the `COMPARED` parts of two result files' JSON dicts, value by value."""
    differences: list[Difference] = []
    compared = sum(_walk(recorded[part], current.get(part, _MISSING), part, differences)
                   for part in COMPARED if part in recorded)
    return Comparison(differences, compared)


def _walk(recorded: Any, current: Any, where: str, differences: list[Difference]) -> int:
    """Append every leaf that differs to `differences`; return the number of leaves compared. An entry the rerun
    adds (a field newer than the recorded file) contradicts nothing recorded and is not compared; one it lacks is a
    difference."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        return sum(_walk(value, current.get(key, _MISSING), f"{where}/{key}", differences)
                   for key, value in recorded.items())
    if isinstance(recorded, list) and isinstance(current, list):
        if len(recorded) != len(current):
            differences.append(Difference(f"{where} (length)", len(recorded), len(current)))
            return 1
        return sum(_walk(old, new, f"{where}/{index}", differences)
                   for index, (old, new) in enumerate(zip(recorded, current)))
    if not _same(recorded, current):
        differences.append(Difference(where, recorded, current))
    return 1


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Missing()


def _same(recorded: Any, current: Any) -> bool:
    if _is_number(recorded) and _is_number(current):
        return float(recorded) == float(current)   # 1 and 1.0 are the same number in JSON
    return type(recorded) is type(current) and recorded == current


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value) if not isinstance(value, (dict, list)) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def added_entries(recorded: Any, current: Any, where: str = "") -> list[str]:
    """Paths of the entries (under the `COMPARED` parts) that the rerun has and the recorded file lacks."""
    if not where:
        return [path for part in COMPARED for path in added_entries(recorded.get(part), current.get(part), part)]
    if not (isinstance(recorded, dict) and isinstance(current, dict)):
        return []
    return [path for key, value in current.items()
            for path in ([f"{where}/{key}"] if key not in recorded else added_entries(recorded[key], value,
                                                                                       f"{where}/{key}"))]


def config_notes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Model settings that differ between the two files: the rerun used today's defaults for settings the spec does
    not override, so a changed default is the first suspect when the numbers differ."""
    old, new = recorded.get("model", {}).get("config", {}), current.get("model", {}).get("config", {})
    return [f"model setting '{key}': recorded {_short(old.get(key, _MISSING))}, now {_short(new.get(key, _MISSING))}"
            for key in dict.fromkeys([*old, *new]) if not _same(old.get(key, _MISSING), new.get(key, _MISSING))]


# --- rerunning -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordedSettings:
    """The environment settings a rerun copies from the result file because they change floating-point results."""

    threads: int | None      # torch intra-op threads; None in files that did not record it (torch's default then)
    device: str              # "cpu", "cuda", "cuda:0"

    @classmethod
    def of(cls, result: RunResult) -> RecordedSettings:
        threads = result.environment.get("torch_threads")
        return cls(threads=int(threads) if isinstance(threads, int) and threads > 0 else None,
                   device=str(result.environment.get("device") or "cpu"))


def check_device(settings: RecordedSettings, source: Path) -> None:
    """A run recorded on a GPU is only reproduced on a GPU: on the CPU the numbers differ by construction."""
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{source}: recorded on device '{settings.device}', but torch sees no CUDA device here; "
                        "reproduce it on a machine with a GPU.")
    if settings.device != "cpu" and not settings.device.startswith("cuda"):
        raise UserError(f"{source}: environment.device '{settings.device}' is not a device this mer-bench runs on.")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch threads (unchanged when None), then restore the previous count."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_recorded_data(result: RunResult, source: Path, catalog: Catalog, data_dir: Path | None,
                       data_file: Path | None) -> MERData:
    """The dataset as found now, refused unless its checksum is the one recorded in the result file."""
    data = load_dataset(catalog.dataset(result.spec.dataset).value, data_dir, data_file)
    recorded = result.dataset.get("sha256")
    if data.sha256 != recorded:
        raise UserError(f"{source}: dataset.sha256 is {str(recorded)[:16]}..., but the data found ({data.source}) "
                        f"has {data.sha256[:16]}...: not the data this result was scored on (give that file with "
                        "--data-file or --data-dir).")
    return data


def check_out_dir(original: Path, out_dir: Path) -> None:
    """The rerun must never replace the original (or join its results folder, where it would count twice)."""
    original, out_dir = original.resolve(), out_dir.resolve()
    if out_dir == original or out_dir in original.parents:
        raise UserError(f"--out {out_dir} holds the result file being reproduced ({original}); give a folder "
                        "outside it (the rerun must not replace or join the original).")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder.")


@dataclass(frozen=True)
class Rerun:
    """A result file's run, checked and ready to redo: everything that can refuse has refused by now."""

    source: Path
    recorded: dict[str, Any]           # the result file's JSON, as read before the rerun
    original: RunResult
    data: MERData                      # the data found, with the recorded checksum
    settings: RecordedSettings
    out_dir: Path | None               # None: a temporary folder, removed after the comparison
    data_dir: Path | None
    data_file: Path | None
    catalog: Catalog


def prepare(source: Path, out_dir: Path | None = None, data_dir: Path | None = None, data_file: Path | None = None,
            catalog: Catalog | None = None) -> Rerun:
    """Read `source` and check that its run can be redone here the way it was recorded (one-line `UserError`s)."""
    source = Path(source)
    original = read_result(source)
    if data_dir is not None and data_file is not None:
        raise UserError("Give either --data-dir or --data-file, not both.")
    if out_dir is not None:
        check_out_dir(source, Path(out_dir))
    catalog = catalog or get_catalog()
    catalog.model(original.spec.model)               # an unknown model fails here, before the data is loaded
    settings = RecordedSettings.of(original)
    check_device(settings, source)
    data = load_recorded_data(original, source, catalog, data_dir, data_file)
    return Rerun(source, _read_json(source), original, data, settings, None if out_dir is None else Path(out_dir),
                 data_dir, data_file, catalog)


def rerun_and_compare(rerun: Rerun, progress: Progress | None = None) -> Reproduction:
    """Train and score the run again with the recorded threads and device, write it beside (never over) the
    original, and compare the two files."""
    with contextlib.ExitStack() as stack:
        folder = rerun.out_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mer-bench-reproduce-")))
        options = RunOptions(out_dir=folder, data_dir=rerun.data_dir, data_file=rerun.data_file,
                             device=rerun.settings.device, force=True, probes=rerun.original.probes is not None,
                             progress=progress or NullProgress())
        with torch_threads(rerun.settings.threads):
            rerun_path = run_one(rerun.original.spec, rerun.data, options, rerun.catalog).path
        current = _read_json(rerun_path)
    return Reproduction(original=rerun.source, rerun=rerun_path if rerun.out_dir is not None else None,
                        run_id=rerun.original.run_id, comparison=compare_records(rerun.recorded, current),
                        recorded_environment=rerun.original.environment, current_environment=current["environment"],
                        notes=notes(rerun.recorded, current))


def reproduce(source: Path, out_dir: Path | None = None, data_dir: Path | None = None,
              data_file: Path | None = None, catalog: Catalog | None = None,
              progress: Progress | None = None) -> Reproduction:
    """Rerun the result file `source` in its recorded settings and compare (`prepare`, then `rerun_and_compare`).
    With `out_dir` None the rerun goes to a temporary folder that is removed afterwards; the original file is never
    written."""
    return rerun_and_compare(prepare(source, out_dir, data_dir, data_file, catalog), progress)


def notes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What explains rather than decides: changed model settings, code outside any commit, and entries newer than
    the recorded file."""
    added = [f"new entry, not in the recorded file: {path}" for path in added_entries(recorded, current)]
    return [*config_notes(recorded, current), *dirty_notes(recorded, current), *added]


def dirty_notes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """A '+dirty' commit ran code with uncommitted changes: on that side the commit does not say which code ran."""
    sides = {"recorded run": recorded, "rerun": current}
    return [f"the {side} ran from a checkout with uncommitted changes ({commit}): no commit holds its exact code"
            for side, record in sides.items()
            if str(commit := record.get("environment", {}).get("git_commit")).endswith("+dirty")]


def _read_json(path: Path) -> dict[str, Any]:
    """The file as JSON, so both sides went through the same float formatting (the rerun was written like the
    original)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
