"""Hyperparameter selection on the validation split only, and the selection files that record it.

For each model and dataset of a grid, every configuration (the runs that differ only in their seed) is scored by the
mean over its seeds of one validation metric (default: Has0 Acc-2, on the regression track when the model outputs a
score, else on the classification track). The best mean wins; ties go to the configuration listed first in the grid.
Test metrics are read for the chosen configuration only: the test split plays no part in the choice. (The official
CMC tuner and MMSA's tune mode choose on test.)

By default only complete configurations (every seed of the grid has a result) compete, so that each mean is over
the same seeds; `allow_incomplete` lets configurations with at least one finished seed compete too.

Selection file: ``<selections>/<dataset>/<model>.json`` (the grid's ``selections`` folder, by default the results
folder's sibling ``<results>-selections``; kept out of the results folder because every visible ``*.json`` there is
read as a result file)::

    {
      "format": "mer-bench selection", "version": 1, "created": "<ISO 8601 UTC>",
      "model": "cmc", "dataset": "sims", "style": "sims", "synthetic": false,
      "grid_file": "/abs/path/sweeps/cmc-reference.toml", "results": "/abs/path/results/cmc-reference",
      "criterion": {"split": "valid", "subset": "all", "track": "regression", "metric": "has0_acc2",
                    "higher_is_better": true, "aggregate": "mean over seeds", "seeds": [1111, 1112, 1113],
                    "complete_only": true},
      "selected": {
        "config_id": "<12 hex>", "overrides": {"layers": 2, "heads": 4, "out_dropout": 0.3},
        "text_mode": "features", "epochs": null,
        "valid": {"mean": 0.71, "std": 0.01, "n": 3},
        "run_ids": ["cmc-sims-s1111-<hash>", ...],
        "result_files": ["../../cmc-reference/sims/cmc/cmc-sims-s1111-<hash>.json", ...],  # relative to this file
        "test": {"<subset>": {"<track>": {"<metric>": {"mean": m, "std": s or null, "n": k}}}}
      },
      "candidates": [   # every configuration, best first; configurations without a value last
        {"config_id": "...", "overrides": {...}, "valid": {"mean": ..., "std": ..., "n": ...},
         "seeds_done": 3, "seeds_planned": 3, "complete": true, "run_ids": [...]}
      ]
    }

``config_id`` is a hash of the configuration (model, dataset, settings, text mode, epoch budget), stable across
machines like a run id. ``test`` holds, for the selected configuration only, every metric of every test subset and
track the runs report, as mean / sample std (null for one seed) / count over seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_bench.errors import UserError, unknown_name
from mer_bench.metrics import MAIN_METRIC, METRICS, TRACKS
from mer_bench.results import RunResult, read_result, write_json_atomic
from mer_bench.runspec import RunSpec
from mer_bench.stats import mean_std
from mer_bench.sweep.grid import SweepGrid
from mer_bench.sweep.store import now_iso

SELECTION_FORMAT, SELECTION_VERSION = "mer-bench selection", 1


@dataclass(frozen=True)
class Criterion:
    metric: str = MAIN_METRIC
    track: str | None = None            # None: regression when the model outputs a score, else classification
    allow_incomplete: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise unknown_name("metric", self.metric, METRICS)
        if self.track is not None and self.track not in TRACKS:
            raise unknown_name("track", self.track, TRACKS)

    def admits(self, candidate: Candidate) -> bool:
        """Whether a configuration may compete: it has results, and all its seeds unless incomplete ones may."""
        return bool(candidate.results) and (candidate.complete or self.allow_incomplete)


@dataclass
class Candidate:
    """One configuration: the runs of one model on one dataset that differ only in their seed."""

    specs: list[RunSpec]
    results: list[RunResult]
    values: list[float | None]

    @property
    def first(self) -> RunSpec:
        return self.specs[0]

    @property
    def valid(self) -> dict[str, Any]:
        mean, std, n = mean_std(self.values)
        return {"mean": mean, "std": std, "n": n}

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.specs)

    def describe(self) -> dict[str, Any]:
        return {"config_id": config_id(self.first), "overrides": self.first.to_dict()["overrides"],
                "valid": self.valid, "seeds_done": len(self.results), "seeds_planned": len(self.specs),
                "complete": self.complete, "run_ids": [result.run_id for result in self.results]}


@dataclass
class Selection:
    model: str
    dataset: str
    track: str | None
    candidates: list[Candidate]        # best first
    chosen: Candidate | None           # None when no configuration may compete yet
    path: Path | None = None           # where the selection file was written


def config_key(spec: RunSpec) -> tuple:
    return (spec.model, spec.dataset, spec.overrides, spec.text_mode, spec.epochs)


def config_id(spec: RunSpec) -> str:
    data = {key: value for key, value in spec.to_dict().items() if key != "seed"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def select(grid: SweepGrid, criterion: Criterion) -> list[Selection]:
    """One selection per model and dataset of the grid, in grid order."""
    groups: dict[tuple[str, str], dict[tuple, list[RunSpec]]] = {}
    for spec in grid.specs:
        groups.setdefault((spec.model, spec.dataset), {}).setdefault(config_key(spec), []).append(spec)
    return [select_one(model, dataset, list(configs.values()), grid.results, criterion)
            for (model, dataset), configs in groups.items()]


def select_one(model: str, dataset: str, configs: list[list[RunSpec]], out_dir: Path,
               criterion: Criterion) -> Selection:
    candidates = [_candidate(specs, out_dir) for specs in configs]
    finished = [result for candidate in candidates for result in candidate.results]
    track = criterion.track or (_auto_track(finished[0]) if finished else None)
    for candidate in candidates:
        candidate.values = [_valid_value(result, track, criterion.metric) for result in candidate.results]
    eligible = [c for c in candidates if criterion.admits(c)]
    ranked = sorted(eligible, key=lambda c: _rank_key(c, criterion.metric))   # stable: grid order breaks ties
    chosen = ranked[0] if ranked and ranked[0].valid["mean"] is not None else None
    others = [c for c in candidates if c not in eligible]
    return Selection(model, dataset, track, ranked + others, chosen)


def _candidate(specs: list[RunSpec], out_dir: Path) -> Candidate:
    results = [read_result(spec.result_path(out_dir)) for spec in specs if spec.result_path(out_dir).exists()]
    return Candidate(specs, results, [])


def _auto_track(result: RunResult) -> str:
    return "regression" if "score" in result.model["outputs"] else "classification"


def _valid_value(result: RunResult, track: str, metric: str) -> float | None:
    tracks = result.metrics["valid"]["all"]
    if track not in tracks:
        raise UserError(f"{result.run_id}: has no {track} track on the validation split (it has "
                        f"{', '.join(tracks) or 'none'}); choose another with --track.")
    if metric not in tracks[track]:
        raise UserError(f"{result.run_id}: the {track} track has no metric '{metric}' (it has "
                        f"{', '.join(tracks[track])}); choose another with --metric.")
    return tracks[track][metric]


def _rank_key(candidate: Candidate, metric: str) -> tuple[int, float]:
    mean = candidate.valid["mean"]
    if mean is None:
        return (1, 0.0)   # undefined (e.g. a correlation of constant predictions): never chosen over a value
    return (0, -mean if METRICS[metric].higher_is_better else mean)


def summarise_test(results: Iterable[RunResult]) -> dict[str, Any]:
    """{subset: {track: {metric: {mean, std, n}}}} over seeds, for the test split."""
    results = list(results)
    summary: dict[str, Any] = {}
    for subset, tracks in results[0].metrics["test"].items():
        for track, metrics in tracks.items():
            for metric in metrics:
                values = [r.metrics["test"].get(subset, {}).get(track, {}).get(metric) for r in results]
                mean, std, n = mean_std(values)
                summary.setdefault(subset, {}).setdefault(track, {})[metric] = {"mean": mean, "std": std, "n": n}
    return summary


def write_selection(selection: Selection, grid: SweepGrid, criterion: Criterion) -> Path:
    path = grid.selections / selection.dataset / f"{selection.model}.json"
    write_json_atomic(path, selection_record(selection, grid, criterion, path.parent))
    selection.path = path
    return path


def selection_record(selection: Selection, grid: SweepGrid, criterion: Criterion, folder: Path) -> dict[str, Any]:
    chosen = selection.chosen
    assert chosen is not None
    first = chosen.results[0]
    selected = {**chosen.describe(), "text_mode": chosen.first.text_mode, "epochs": chosen.first.epochs,
                "result_files": [os.path.relpath(r.spec.result_path(grid.results), folder) for r in chosen.results],
                "test": summarise_test(chosen.results)}
    for key in ("seeds_done", "seeds_planned", "complete"):
        selected.pop(key)
    return {
        "format": SELECTION_FORMAT, "version": SELECTION_VERSION, "created": now_iso(),
        "model": selection.model, "dataset": selection.dataset, "style": first.dataset["style"],
        "synthetic": first.dataset["synthetic"], "grid_file": str(grid.path.resolve()), "results": str(grid.results),
        "criterion": {"split": "valid", "subset": "all", "track": selection.track, "metric": criterion.metric,
                      "higher_is_better": METRICS[criterion.metric].higher_is_better, "aggregate": "mean over seeds",
                      "seeds": sorted({spec.seed for spec in chosen.specs}),
                      "complete_only": not criterion.allow_incomplete},
        "selected": selected,
        "candidates": [candidate.describe() for candidate in selection.candidates],
    }
