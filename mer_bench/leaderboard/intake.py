"""The leaderboard's own loading step: every result and selection file is parsed and checked here, before anything
from it reaches a page, a file name or a ranking.

Result folders may come from anyone (a pull request, a shared lab folder), so a file is treated as hostile until it
passes. Each check failing skips that one file with a message naming the file and the field; the build goes on:

- parsing: bounded size, no integers longer than `MAX_INT_DIGITS` digits (Python's own limit raises a ValueError
  that is no JSON error), no NaN / Infinity literals, no float that overflows to infinity, nesting at most
  `MAX_DEPTH` levels (deeper input raises RecursionError in the parser or in the schema check);
- names: everything that can reach a path or an identifier (model, dataset, plugin and subset names, run ids, the
  data checksum) must match a strict pattern; free text (titles, settings) is only ever shown, autoescaped;
- types and numbers the board reads, beyond the result schema: metric values within their ranges, per-sample arrays
  of the right shape, subset indices within the test split;
- provenance: the test metrics are recomputed from the stored per-sample predictions with
  `mer_bench.metrics.compute_metrics` and must agree to `TOLERANCE`, so a file cannot claim numbers its own
  predictions do not give (see `ranking` for runs without predictions: shown, never ranked).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_bench.errors import UserError
from mer_bench.metrics import METRICS, TRACKS, compute_metrics
from mer_bench.results import ResultError, RunResult, finite_or_null

from mer_bench.leaderboard.boards import TRACK_OUTPUTS
from mer_bench.leaderboard.safejson import Rejected, parse_json
from mer_bench.leaderboard.selections import SelectionError, SelectionFile, is_selection, parse_selection

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}")      # model, dataset, plugin and subset names
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
SHA256 = re.compile(r"[0-9a-f]{64}")
TOLERANCE = 1e-9               # stored metrics are the same float64 computation written with repr: exact in practice
MAX_SEED = 2**63
MAX_SECONDS = 1e9
MAX_PARAMETERS = 10**15
MAX_PROBE = 1e6
# Metric ranges: accuracies and F1 are fractions, correlation in [-1, 1], MAE non-negative (and, on any label scale
# in use, far below MAX_MAE).
MAX_MAE = 1e6
RANGES = {key: (-1.0, 1.0) if key == "corr" else (0.0, MAX_MAE) if key == "mae" else (0.0, 1.0) for key in METRICS}


# ---- which files -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Listed:
    """A candidate file, or a reason it is not read (a link pointing outside the folder that was given)."""

    path: Path
    problem: str = ""


def list_json_files(paths: Iterable[Path]) -> Iterator[Listed]:
    """Every *.json below the given files and folders in sorted order, hidden (temporary) files skipped. Folders are
    walked without following links; a linked file is read only when it resolves inside the folder given, so a
    results folder cannot make the build read (and show) files from elsewhere on the machine."""
    for path in map(Path, paths):
        if not path.is_dir():
            yield Listed(path)
            continue
        root = path.resolve()
        found = []
        for folder, subfolders, names in os.walk(path):    # followlinks=False: linked folders are not entered
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            found += [Path(folder) / name for name in names if name.endswith(".json") and not name.startswith(".")]
        for file in sorted(found):
            if file.is_symlink() and not file.resolve().is_relative_to(root):
                yield Listed(file, f"a link to {os.readlink(file)}, outside {path}; not read")
            else:
                yield Listed(file)


# ---- checks of a result file beyond its schema ----------------------------------------------------------------------

def _name(value: Any, where: str, pattern: re.Pattern[str] = NAME) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise Rejected(f"'{where}': {str(value)[:80]!r} is not a plain name (letters, digits, '.', '_', '+', '-'; "
                       "starting with a letter or digit)")


def _number(value: Any, where: str, low: float, high: float, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise Rejected(f"'{where}': {str(value)[:40]} is not a number in [{low:g}, {high:g}]")


def _text(value: Any, where: str, *, optional: bool = True) -> None:
    if not (isinstance(value, str) or (optional and value is None)):
        raise Rejected(f"'{where}': must be a string, not {type(value).__name__}")


def check_names(data: dict[str, Any]) -> None:
    spec, model, dataset = data["spec"], data["model"], data["dataset"]
    _name(spec["model"], "spec/model")
    _name(spec["dataset"], "spec/dataset")
    _name(model["name"], "model/name")
    _name(model["plugin"], "model/plugin")
    _name(dataset["name"], "dataset/name")
    _name(data["run_id"], "run_id", RUN_ID)
    if not isinstance(dataset["sha256"], str) or not SHA256.fullmatch(dataset["sha256"]):
        raise Rejected(f"'dataset/sha256': {str(dataset['sha256'])[:80]!r} is not a SHA-256 checksum "
                       "(64 lowercase hex digits)")
    plugin = data["environment"].get("plugin")
    if plugin is not None:
        if not isinstance(plugin, dict):
            raise Rejected("'environment/plugin': must be an object")
        _name(plugin.get("name"), "environment/plugin/name")
    for subset in (dataset["subsets"] or {}):
        _name(subset, f"dataset/subsets/{subset}")
    for subset in (data["predictions"].get("subsets") or {}):
        _name(subset, f"predictions/subsets/{subset}")


def check_fields(data: dict[str, Any]) -> None:
    """Types and ranges of the fields the pages show, which the result schema leaves open."""
    spec = data["spec"]
    _number(spec["seed"], "spec/seed", -MAX_SEED, MAX_SEED - 1, optional=False)
    _number(spec["epochs"], "spec/epochs", 0, 10**6)
    _number(data["parameters"], "parameters", 0, MAX_PARAMETERS, optional=False)
    for key, value in data["timings"].items():
        _number(value, f"timings/{key}", 0.0, MAX_SECONDS)
    for key in ("distribution", "version", "summary"):
        _text(data["model"].get(key), f"model/{key}")
    for key in ("title", "source"):
        _text(data["dataset"].get(key), f"dataset/{key}")
    _text(data["created"], "created", optional=False)
    for key in ("git_commit", "device", "device_name", "mer_bench"):
        _text(data["environment"].get(key), f"environment/{key}")
    for key, value in (data["dataset"]["sizes"] or {}).items():
        _number(value, f"dataset/sizes/{key}", 0, MAX_PARAMETERS)
    for key, value in (data["dataset"]["subsets"] or {}).items():
        _number(value, f"dataset/subsets/{key}", 0, MAX_PARAMETERS)
    _check_probes(data.get("probes"))
    _check_metrics(data["metrics"])


def _check_probes(probes: Any) -> None:
    if probes is None:
        return
    if probes.get("track") is not None and probes["track"] not in TRACKS:
        raise Rejected(f"'probes/track': {str(probes['track'])[:40]!r} is not a track")
    for key, value in probes.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _number(value, f"probes/{key}", -MAX_PROBE, MAX_PROBE)


def _check_metrics(metrics: dict[str, Any]) -> None:
    for split in ("valid", "test"):
        for subset, tracks in metrics[split].items():
            if subset != "all":
                _name(subset, f"metrics/{split}/{subset}")
            for track, values in tracks.items():
                if track not in TRACKS:
                    raise Rejected(f"'metrics/{split}/{subset}/{str(track)[:40]}': not a track ({', '.join(TRACKS)})")
                for key, value in values.items():
                    if key not in RANGES:
                        raise Rejected(f"'metrics/{split}/{subset}/{track}/{str(key)[:40]}': not a metric")
                    _number(value, f"metrics/{split}/{subset}/{track}/{key}", *RANGES[key])


def check_predictions(predictions: dict[str, Any]) -> None:
    """Shapes the board relies on: (N,) labels and scores, (N, 3) probabilities, subset indices within [0, N)."""
    n = len(predictions["ids"])
    for name in ("label", "score"):
        if name in predictions and any(isinstance(item, list) for item in predictions[name]):
            raise Rejected(f"'predictions/{name}': must hold one number per sample")
    probs = predictions.get("probs")
    if probs is not None and not all(isinstance(row, list) and len(row) == 3 for row in probs):
        raise Rejected("'predictions/probs': must hold 3 probabilities per sample")
    for subset, index in (predictions.get("subsets") or {}).items():
        if not isinstance(index, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
            raise Rejected(f"'predictions/subsets/{subset}': must be a list of sample indices")
        if index and (index[0] < 0 or index[-1] >= n or any(b <= a for a, b in zip(index, index[1:]))):
            raise Rejected(f"'predictions/subsets/{subset}': indices must be increasing, within [0, {n})")


# ---- provenance: stored metrics against the stored predictions -----------------------------------------------------

def recompute_problem(result: RunResult) -> str | None:
    """Where the stored test metrics differ from those recomputed from the stored predictions; None when they agree.
    Tracks whose output was not stored cannot be checked here (the ranking leaves such rows unranked)."""
    predictions, style = result.predictions, result.dataset["style"]
    label = np.asarray(predictions["label"], dtype=np.float64)                 # (N,)
    indices = predictions.get("subsets") or {}
    for track in TRACKS:
        output = TRACK_OUTPUTS[track]
        if output not in predictions:
            continue
        values = np.asarray(predictions[output], dtype=np.float64)             # (N,) score or (N, 3) probs
        for subset, tracks in result.metrics["test"].items():
            if track not in tracks:
                continue
            if subset != "all" and subset not in indices:
                return f"'metrics/test/{subset}': no stored sample indices to check it against"
            pick = slice(None) if subset == "all" else np.asarray(indices[subset], dtype=np.int64)
            # as a result file stores them: an undefined metric (NaN) is null
            recomputed = finite_or_null(compute_metrics(style, label[pick], **{output: values[pick]})[track])
            problem = _differs(tracks[track], recomputed)
            if problem:
                return f"'metrics/test/{subset}/{track}/{problem}"
    return None


def _differs(stored: dict[str, Any], recomputed: dict[str, float | None]) -> str | None:
    for key in sorted(set(stored) | set(recomputed)):
        old, new = stored.get(key), recomputed.get(key)
        same = old is None and new is None if old is None or new is None else abs(old - new) <= TOLERANCE
        if not same:
            return (f"{key}': the file says {old}, its stored predictions give {new}; metrics that disagree with "
                    "the predictions are not shown")
    return None


MESSAGE_LIMIT = 500   # characters of one skip message: a schema error may quote a whole field of the file


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message about a file as one safe terminal line: characters that are not printable (newlines, terminal escape
    sequences, bidirectional overrides in a file or field name) are shown as escapes, and the length is bounded."""
    safe = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
    return safe if len(safe) <= limit else f"{safe[:limit]}… ({len(safe) - limit} more characters)"


# ---- one file, every file -----------------------------------------------------------------------------------------

def checked_result(data: Any, source: str) -> RunResult:
    """A `RunResult` from parsed contents that passed every check; otherwise a `ResultError` naming file and field."""
    result = RunResult.from_json_dict(data, source)     # the result schema (raises ResultError itself)
    try:
        check_names(data)
        check_fields(data)
        check_predictions(data["predictions"])
        problem = recompute_problem(result)
    except Rejected as error:
        raise ResultError(f"{source}: not a valid result file at {error}") from None
    if problem:
        raise ResultError(f"{source}: not a valid result file at {problem}")
    return result


def check_selection(selection: SelectionFile) -> None:
    """Names in a selection file that reach page names and links: model and dataset names, run ids."""
    data = selection.data
    try:
        _name(data["model"], "model")
        _name(data["dataset"], "dataset")
        _name(data["criterion"]["subset"], "criterion/subset")
        for run_id in data["selected"]["run_ids"]:
            _name(run_id, "selected/run_ids", RUN_ID)
    except Rejected as error:
        raise SelectionError(f"{selection.path}: not a valid selection file at {error}") from None


@dataclass
class Inputs:
    """What a build read: results and selections, and the files of each kind it skipped."""

    results: list[RunResult] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)       # the file of each result, in the same order
    result_problems: list[UserError] = field(default_factory=list)
    selections: list[SelectionFile] = field(default_factory=list)
    selection_problems: list[UserError] = field(default_factory=list)

    def add_selection(self, data: Any, path: Path) -> None:
        try:
            selection = parse_selection(data, path)
            check_selection(selection)
            self.selections.append(selection)
        except SelectionError as error:
            self.selection_problems.append(error)


def _read_one(inputs: Inputs, listed: Listed, kind: type[UserError]) -> None:
    """Parse and check one file into `inputs`. Anything a hostile file can make the checks raise is caught here and
    reported for that file alone, so no file can abort the build."""
    label = "result" if kind is ResultError else "selection"
    problems = inputs.result_problems if kind is ResultError else inputs.selection_problems
    if listed.problem:
        problems.append(kind(f"{listed.path}: {listed.problem}"))
        return
    try:
        data = parse_json(listed.path)
    except Rejected as error:
        problems.append(kind(f"{listed.path}: cannot read {label} file ({error})"))
        return
    try:
        if is_selection(data) or kind is SelectionError:     # a non-selection here is a malformed selection
            inputs.add_selection(data, listed.path)
        else:
            inputs.results.append(checked_result(data, str(listed.path)))
            inputs.sources.append(str(listed.path))
    except UserError as error:
        problems.append(error)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError) as error:
        problems.append(kind(f"{listed.path}: not a valid {label} file ({type(error).__name__}: {error})"))


def read_inputs(result_paths: Iterable[Path], selection_paths: Iterable[Path]) -> Inputs:
    """Result files under `result_paths` (selection files among them count as selections, not as bad results) and
    selection files under `selection_paths`; every *.json below a folder is read."""
    inputs = Inputs()
    for listed in list_json_files(result_paths):
        _read_one(inputs, listed, ResultError)
    for listed in list_json_files(selection_paths):
        _read_one(inputs, listed, SelectionError)
    return inputs
