"""`RunResult`, its JSON form (with a schema and a version), atomic writes and reading result folders.

One JSON file per run, at ``OUT/<dataset>/<model>/<run-id>.json``. Files are written to a temporary name in the same
folder and renamed into place, so a reader (or a run killed mid-write) never sees half a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from mer_bench import fileio
from mer_bench.errors import UserError
from mer_bench.runspec import SEED_RANGE, SHA256_PATTERN, RunSpec

SCHEMA_VERSION = 1

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_METRIC_TABLE = {"type": "object", "additionalProperties": _NUMBER_OR_NULL}
_TRACKS = {"type": "object", "additionalProperties": _METRIC_TABLE}
_SUBSETS = {"type": "object", "additionalProperties": _TRACKS}

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mer-bench run result",
    "type": "object",
    "required": ["schema_version", "run_id", "spec", "model", "dataset", "metrics", "predictions", "timings",
                 "parameters", "environment", "created", "command"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "run_id": {"type": "string"},
        "spec": {
            "type": "object",
            "required": ["model", "dataset", "seed", "overrides", "text_mode", "epochs"],
            "properties": {"model": {"type": "string"}, "dataset": {"type": "string"},
                           "seed": {"type": "integer", "minimum": SEED_RANGE[0], "maximum": SEED_RANGE[1]},
                           "overrides": {"type": "object"}, "text_mode": {"enum": ["features", "bert"]},
                           "epochs": {"type": ["integer", "null"]},
                           # optional: files written before the data's checksum named the run lack it (runspec.py)
                           "data_sha256": {"type": "string", "pattern": f"^{SHA256_PATTERN.pattern}$"}},
        },
        "model": {
            "type": "object",
            "required": ["name", "plugin", "distribution", "version", "outputs", "config"],
            "properties": {"outputs": {"type": "array", "items": {"enum": ["score", "probs"]}},
                           "config": {"type": "object"},
                           # optional, text mode "bert" only: the checkpoint, folder or random-init BERT it read
                           "bert": {"type": "string"}},
        },
        "dataset": {
            "type": "object",
            "required": ["name", "title", "style", "synthetic", "source", "sha256", "sizes", "subsets", "notes"],
            "properties": {"style": {"enum": ["mosi", "sims"]}, "synthetic": {"type": "boolean"},
                           "sha256": {"type": "string"}, "sizes": {"type": "object"},
                           "subsets": {"type": ["object", "null"]}, "notes": {"type": "array"},
                           # optional (older files lack it): "native", "segment-mean" or null, see data/align.py
                           "alignment": {"enum": ["native", "segment-mean", None]},
                           # optional: generated data's family and every knob (mer_bench.data.synthetic_family)
                           "generator": {"type": "object", "required": ["family", "knobs"],
                                         "properties": {"family": {"type": "string"}, "knobs": {"type": "object"}}}},
        },
        "metrics": {
            "type": "object",
            "required": ["valid", "test"],
            "properties": {"valid": _SUBSETS, "test": _SUBSETS},
        },
        "predictions": {
            # Per-sample arrays are checked by `_check_predictions` (lengths and numbers) rather than item by item
            # here: schema validation of every element cost more than reading the file.
            "type": "object",
            "required": ["ids", "label"],
            "properties": {"ids": {"type": "array"}, "label": {"type": "array"}, "score": {"type": "array"},
                           "probs": {"type": "array"}, "unimodal_labels": {"type": ["array", "null"]},
                           "subsets": {"type": ["object", "null"]}, "extras": {"type": "object"}},
        },
        "probes": {"type": ["object", "null"]},
        # optional: what a model's mechanisms did (CMC: PLGM, router, text reliance; mer_bench_cmc/claims.py)
        "claims": {"type": ["object", "null"]},
        "timings": {"type": "object", "additionalProperties": _NUMBER_OR_NULL},
        "parameters": {"type": "integer"},
        "environment": {"type": "object"},
        "created": {"type": "string"},
        "command": {"type": "string"},
    },
}


_VALIDATOR = jsonschema.Draft202012Validator(RESULT_SCHEMA)


class ResultError(UserError):
    """A result file that cannot be read or does not follow the schema."""


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced. Metrics are nested as metrics[split][subset][track][metric]."""

    spec: RunSpec
    model: dict[str, Any]          # name, plugin, distribution, version, outputs, config (bert: text mode bert)
    dataset: dict[str, Any]        # name, title, style, synthetic, source, sha256, sizes, subsets, notes, alignment
    metrics: dict[str, Any]        # {"valid": {"all": {track: {...}}}, "test": {"all": ..., "consistent": ...}}
    predictions: dict[str, Any]    # test split: ids, label, score and/or probs, extras, subsets (indices), unimodal
    timings: dict[str, float]      # seconds: fit, predict_valid, predict_test, probes, total
    parameters: int
    environment: dict[str, Any]
    created: str                   # ISO 8601, UTC
    probes: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    command: str | None = None     # reproduces the run, data location included; None: the spec's own command()

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def to_json_dict(self) -> dict[str, Any]:
        return finite_or_null({
            "schema_version": self.schema_version, "run_id": self.run_id, "spec": self.spec.to_dict(),
            "model": self.model, "dataset": self.dataset, "metrics": self.metrics, "predictions": self.predictions,
            "probes": self.probes, "timings": self.timings, "parameters": self.parameters,
            "environment": self.environment, "created": self.created, "command": self.command or self.spec.command(),
            **self.extra,
        })

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], source: str = "<memory>") -> RunResult:
        validate(data, source)
        known = {"schema_version", "run_id", "spec", "model", "dataset", "metrics", "predictions", "probes",
                 "timings", "parameters", "environment", "created", "command"}
        return cls(spec=RunSpec.from_dict(data["spec"]), model=data["model"], dataset=data["dataset"],
                   metrics=data["metrics"], predictions=data["predictions"], timings=data["timings"],
                   parameters=data["parameters"], environment=data["environment"], created=data["created"],
                   probes=data.get("probes"), extra={k: v for k, v in data.items() if k not in known},
                   command=data["command"])


def finite_or_null(value: Any) -> Any:
    """NaN and infinities are not JSON: store them as null (an undefined metric)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def validate(data: Any, source: str) -> None:
    """Raise `ResultError` naming the file and the first schema violation."""
    if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise ResultError(f"{source}: schema_version {data.get('schema_version')!r} is not supported "
                          f"(this mer-bench reads version {SCHEMA_VERSION}).")
    error = schema_problem(_VALIDATOR, data)
    if error is not None:
        raise ResultError(f"{source}: not a valid result file at {error}")
    problem = _check_predictions(data["predictions"])
    if problem:
        raise ResultError(f"{source}: not a valid result file at 'predictions': {problem}")
    problem = _check_data_identity(data)
    if problem:
        raise ResultError(f"{source}: not a valid result file at 'spec/data_sha256': {problem}")


def schema_problem(validator: jsonschema.protocols.Validator, data: Any) -> str | None:
    """"'<path>': <message>" of the most relevant schema violation, or None when `data` is valid."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"'{where}': {error.message}"


def _check_data_identity(data: dict[str, Any]) -> str | None:
    """The checksum that names the run is the one of the data it was scored on (absent in old files: nothing to
    compare)."""
    named = data["spec"].get("data_sha256")
    if named is not None and named != data["dataset"]["sha256"]:
        return "spec.data_sha256 differs from dataset.sha256 (the run id names other data than the file scored)"
    return None


def _check_predictions(predictions: dict[str, Any]) -> str | None:
    """Every per-sample array has one entry per test sample, of the right kind."""
    n = len(predictions["ids"])
    if not all(isinstance(value, str) for value in predictions["ids"]):
        return "ids must be strings"
    arrays = {"label": predictions["label"], "score": predictions.get("score"), "probs": predictions.get("probs"),
              "unimodal_labels": predictions.get("unimodal_labels"), **predictions.get("extras", {})}
    for name, values in arrays.items():
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != n:
            return f"'{name}' must be a list of {n} entries, one per sample"
        flat = [item for row in values for item in (row if isinstance(row, list) else [row])]
        if not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in flat):
            return f"'{name}' must hold numbers only"
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that `path` is either absent, the old file, or the complete new file; never a partial one. The
    file gets the mode the umask allows (see mer_bench.fileio); a failed write is a one-line `OutputError`."""
    fileio.write_json_atomic(path, data)


def write_result(result: RunResult, out_dir: Path) -> Path:
    path = result.spec.result_path(out_dir)
    write_json_atomic(path, result.to_json_dict())
    return path


def read_result(path: Path) -> RunResult:
    """Read and validate one result file; any problem is a `ResultError` that names the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultError(f"{path}: cannot read result file ({error})") from None
    return RunResult.from_json_dict(data, str(path))


def result_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every *.json below the given files and folders, in sorted order (temporary files skipped)."""
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))
        else:
            yield path


def read_results(paths: Iterable[Path]) -> tuple[list[RunResult], list[ResultError]]:
    """All readable results under `paths`, and one error per file that was skipped."""
    results, problems = [], []
    for path in result_files(paths):
        try:
            results.append(read_result(path))
        except ResultError as error:
            problems.append(error)
    return results, problems
