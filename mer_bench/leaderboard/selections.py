"""Selection files on the boards: which row a hyperparameter selection chose, so that row can be shown as tuned.

A selection file (written by `mer-bench sweep select`; format documented in `mer_bench.sweep.select`) records how one
model's configuration was chosen on one dataset: the criterion (a validation metric averaged over seeds), every
candidate configuration with its validation mean, and the chosen one with its run ids. Each file is read and
checked, then matched to a row:

- the board's dataset name and the model are the selection's, and every selected run id is among the group's runs
  (a row is one effective configuration, so runs are matched by id, not by how their settings were spelled);
- the validation mean recomputed from those runs equals the one the file records, so the evidence describes the runs
  on the board (a selection made before its runs were redone, or on other data, is stale: reported, not shown);
- when the runs are on boards of several data files (checksums), the checksum of the result files the selection
  links to decides.

A file that cannot be read, does not follow the format, or matches no row is reported by name and skipped, as bad
result files are. Selection files found among the result files are recognised as selections, not reported as bad
results, so a folder holding both a results folder and its `-selections` sibling can be passed as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from mer_bench.errors import UserError
from mer_bench.metrics import METRICS
from mer_bench.results import schema_problem
from mer_bench.stats import mean_std

from mer_bench.leaderboard.boards import TRACK_ORDER, Board, Group, GroupKey, safe_slug, short_hash
from mer_bench.leaderboard.safejson import Rejected, parse_json

# As mer_bench.sweep.select writes them. Not imported from there: that module loads torch, which a leaderboard build
# does not need; a test keeps the two equal.
SELECTION_FORMAT, SELECTION_VERSION = "mer-bench selection", 1
FOLDER_SUFFIX = "-selections"   # `sweep select` writes to <results>-selections beside the results folder by default
_SAME = 1e-9                    # relative tolerance when comparing a recorded validation mean with the recomputed one

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_SUMMARY = {"type": "object", "required": ["mean", "std", "n"],
            "properties": {"mean": _NUMBER_OR_NULL, "std": _NUMBER_OR_NULL, "n": {"type": "integer", "minimum": 0}}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_NESTED = {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {
    "type": "object", "additionalProperties": _SUMMARY}}}     # {subset: {track: {metric: summary}}}

SELECTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mer-bench selection",
    "type": "object",
    "required": ["format", "version", "model", "dataset", "criterion", "selected", "candidates"],
    "properties": {
        "format": {"const": SELECTION_FORMAT}, "version": {"const": SELECTION_VERSION},
        "model": {"type": "string"}, "dataset": {"type": "string"}, "created": {"type": "string"},
        "grid_file": {"type": "string"},
        "criterion": {
            "type": "object",
            "required": ["split", "subset", "track", "metric", "higher_is_better", "aggregate", "seeds",
                         "complete_only"],
            "properties": {"split": {"const": "valid"},      # a choice made on any other split is never shown
                           "subset": {"type": "string"}, "track": {"enum": list(TRACK_ORDER)},
                           "metric": {"enum": sorted(METRICS)}, "higher_is_better": {"type": "boolean"},
                           "aggregate": {"type": "string"}, "seeds": {"type": "array", "items": {"type": "integer"}},
                           "complete_only": {"type": "boolean"}},
        },
        "selected": {
            "type": "object",
            "required": ["config_id", "overrides", "text_mode", "epochs", "valid", "run_ids", "result_files", "test"],
            "properties": {"config_id": {"type": "string"}, "overrides": {"type": "object"},
                           "text_mode": {"enum": ["features", "bert"]}, "epochs": {"type": ["integer", "null"]},
                           "valid": _SUMMARY, "run_ids": {**_STRINGS, "minItems": 1}, "result_files": _STRINGS,
                           "test": _NESTED},
        },
        "candidates": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["config_id", "overrides", "valid", "seeds_done", "seeds_planned", "complete", "run_ids"],
            "properties": {"config_id": {"type": "string"}, "overrides": {"type": "object"}, "valid": _SUMMARY,
                           "seeds_done": {"type": "integer"}, "seeds_planned": {"type": "integer"},
                           "complete": {"type": "boolean"}, "run_ids": _STRINGS},
        }},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SELECTION_SCHEMA)


class SelectionError(UserError):
    """A selection file that cannot be read, does not follow the format, or matches no row of any board."""


@dataclass(frozen=True)
class SelectionFile:
    """One checked selection file."""

    path: Path
    data: dict[str, Any]

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def dataset(self) -> str:
        return self.data["dataset"]

    @property
    def criterion(self) -> dict[str, Any]:
        return self.data["criterion"]

    @property
    def selected(self) -> dict[str, Any]:
        return self.data["selected"]

    @property
    def identity(self) -> str:
        """A hash of the contents: copies of one file count once, and it names pages without using the file's path."""
        return short_hash(json.dumps(self.data, sort_keys=True))

    def key_of(self, overrides: dict[str, Any]) -> GroupKey:
        """The row key of a candidate. Candidates of one selection share the model, text mode and epoch budget (a
        grid fixes them per model), so only their overrides are recorded."""
        return GroupKey(self.model, json.dumps(overrides, sort_keys=True), self.selected["text_mode"],
                        self.selected["epochs"])

    @property
    def chosen_key(self) -> GroupKey:
        return self.key_of(self.selected["overrides"])

    def competed(self, candidate: dict[str, Any]) -> bool:
        """Whether a candidate took part in the choice (it had results, and every seed when that was required)."""
        return candidate["seeds_done"] > 0 and (candidate["complete"] or not self.criterion["complete_only"])

    def ranked_candidates(self) -> list[dict[str, Any]]:
        """Candidates best first by validation mean (undefined means after defined ones), then those that did not
        compete; the file's own order (the grid's) breaks ties, as it did in the selection."""
        sign = -1.0 if self.criterion["higher_is_better"] else 1.0

        def rank(candidate: dict[str, Any]) -> tuple:
            mean = candidate["valid"]["mean"]
            return (not self.competed(candidate), mean is None, 0.0 if mean is None else sign * mean)

        return sorted(self.data["candidates"], key=rank)


@dataclass(eq=False)   # compared by identity: a tuned group refers back to its selections
class Tuned:
    """A selection matched to the row (group) it chose, and where its evidence page goes."""

    selection: SelectionFile
    board: Board = field(repr=False)
    group: Group = field(repr=False)
    page: str = ""             # the evidence page, relative to the board's folder

    @property
    def summary(self) -> str:
        criterion = self.selection.criterion
        competing = sum(1 for candidate in self.selection.data["candidates"] if self.selection.competed(candidate))
        seeds = len(criterion["seeds"])
        return (f"chosen by mer-bench sweep select as the best of {competing} configuration"
                f"{'s' if competing != 1 else ''} by validation {METRICS[criterion['metric']].label} "
                f"({criterion['track']} track), mean over {seeds} seed{'s' if seeds != 1 else ''}; "
                "the test split played no part")


def parse_selection(data: Any, path: Path) -> SelectionFile:
    """Check a selection file's contents; any problem is a `SelectionError` that names the file."""
    if isinstance(data, dict) and data.get("format") == SELECTION_FORMAT and data.get("version") != SELECTION_VERSION:
        raise SelectionError(f"{path}: selection file version {data.get('version')!r} is not supported (this "
                             f"mer-bench reads version {SELECTION_VERSION}).")
    error = schema_problem(_VALIDATOR, data)
    if error is not None:
        raise SelectionError(f"{path}: not a valid selection file at {error}")
    if data["selected"]["config_id"] not in {candidate["config_id"] for candidate in data["candidates"]}:
        raise SelectionError(f"{path}: not a valid selection file: the selected configuration "
                             f"{data['selected']['config_id']} is not among its candidates.")
    return SelectionFile(Path(path), data)


def is_selection(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == SELECTION_FORMAT


def sibling_folders(result_paths: Iterable[Path]) -> list[Path]:
    """`<folder>-selections` beside each results folder, where it exists: where `sweep select` writes by default."""
    folders: list[Path] = []
    for path in map(Path, result_paths):
        if not path.is_dir():
            continue
        named = path if path.name not in ("", ".", "..") else path.resolve()   # "." has no name to extend
        sibling = named.with_name(named.name + FOLDER_SUFFIX)
        if sibling.is_dir() and sibling not in folders:
            folders.append(sibling)
    return folders


def _recomputed_valid_mean(selection: SelectionFile, group: Group) -> float | None:
    criterion, by_id = selection.criterion, {run.run_id: run for run in (*group.runs, *group.alternates)}
    values = [by_id[run_id].metrics["valid"].get(criterion["subset"], {}).get(criterion["track"], {})
              .get(criterion["metric"]) for run_id in selection.selected["run_ids"]]
    return mean_std(values)[0]


def _agrees(recorded: float | None, recomputed: float | None) -> bool:
    if recorded is None or recomputed is None:
        return recorded is None and recomputed is None
    return abs(recorded - recomputed) <= _SAME * max(1.0, abs(recorded))


def linked_checksums(selection: SelectionFile) -> set[str]:
    """Dataset checksums of the result files the selection links to (paths relative to its own folder); files that
    cannot be read (moved, or a copied selection folder) are left out."""
    checksums = set()
    for relative in selection.selected["result_files"]:
        try:    # parsed as hostile input: the link may point at any file
            data = parse_json(selection.path.parent / relative)
        except Rejected:
            continue
        checksum = data.get("dataset", {}).get("sha256") if isinstance(data, dict) else None
        if isinstance(checksum, str):
            checksums.add(checksum)
    return checksums


def locate(selection: SelectionFile, boards: list[Board]) -> tuple[Board, Group]:
    """The board and group the selection chose; a `SelectionError` says why there is none."""
    key, wanted = selection.chosen_key, selection.selected["run_ids"]
    found = [(board, group) for board in boards if board.dataset == selection.dataset for group in board.groups
             if group.key.model == selection.model and set(wanted) <= group.run_ids]
    if not found:
        raise SelectionError(f"{selection.path}: the chosen configuration of {selection.model} on "
                             f"{selection.dataset} ({key.settings_text()}) is not among the results read (runs "
                             f"{', '.join(wanted)}); pass the results folder the selection was made from.")
    recorded = selection.selected["valid"]["mean"]
    agreeing = [(b, g) for b, g in found if _agrees(recorded, _recomputed_valid_mean(selection, g))]
    if not agreeing:
        recomputed = _recomputed_valid_mean(selection, found[0][1])
        raise SelectionError(f"{selection.path}: stale: the selected runs now give a validation mean of "
                             f"{recomputed} where the selection recorded {recorded} (the runs were redone or "
                             "are on other data); run `mer-bench sweep select` again.")
    if len(agreeing) > 1:
        checksums = linked_checksums(selection)
        agreeing = [(b, g) for b, g in agreeing if b.sha256 in checksums]
        if len(agreeing) != 1:
            raise SelectionError(f"{selection.path}: the selected runs are on boards of several data files of "
                                 f"{selection.dataset}, and the result files it links to do not say which one.")
    return agreeing[0]


def attach_selections(boards: list[Board], selections: Iterable[SelectionFile]) -> tuple[list[Tuned],
                                                                                         list[SelectionError]]:
    """Match each selection to the row it chose, mark that row tuned and name the evidence page. Copies of one file
    count once; the order (and so the page names) depends on the files' contents only, not on their paths."""
    unique = {selection.identity: selection for selection in selections}
    tuned, problems = [], []
    for selection in sorted(unique.values(), key=lambda s: (s.dataset, s.model, s.identity)):
        try:
            board, group = locate(selection, boards)
        except SelectionError as error:
            problems.append(error)
            continue
        tuned.append(Tuned(selection, board, group))
    for item in tuned:
        model = item.selection.model
        shared = sum(1 for other in tuned if other.board is item.board and other.selection.model == model)
        name = safe_slug(item.selection.model) + ("" if shared == 1 else f"-{item.selection.identity}")
        item.page = f"selections/{name}.html"
        item.group.tuned.append(item)
    return tuned, problems


def hide_unchosen_candidates(tuned: list[Tuned]) -> int:
    """Remove from the boards the rows of configurations a selection considered but did not choose (a row that
    another selection chose stays, and so does a row holding runs that were no candidate, such as default-settings
    runs of the same configuration); returns how many rows were removed."""
    chosen = {id(item.group) for item in tuned}
    hidden = 0
    for item in tuned:
        considered = {run_id for candidate in item.selection.data["candidates"] for run_id in candidate["run_ids"]}
        kept = [group for group in item.board.groups
                if id(group) in chosen or group.key.model != item.selection.model or not group.run_ids <= considered]
        item.board.hidden_candidates += len(item.board.groups) - len(kept)
        hidden += len(item.board.groups) - len(kept)
        item.board.groups = kept
    return hidden
