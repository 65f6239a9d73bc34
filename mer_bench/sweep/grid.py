"""Grid files: which runs a sweep is made of, read from TOML and checked before any work starts.

A grid file names models, datasets and seeds, and per model a hyperparameter grid (every combination is run) plus
settings held fixed. Relative paths in the file (``results``, ``selections``, ``data_dir``) are resolved against the
folder of the grid file, so a sweep finds its results again wherever it is started from (a laptop shell, a Slurm job).
The format is documented in docs/sweeps.md and in `mer_bench.sweep`.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_bench.errors import UserError, unknown_name
from mer_bench.model import TEXT_MODES
from mer_bench.plugins import Catalog
from mer_bench.runner import data_checksum, make_spec
from mer_bench.runspec import SEED_RANGE, RunSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport declared in pyproject.toml
    import tomli as tomllib

TOP_LEVEL_KEYS = ("description", "results", "selections", "datasets", "seeds", "text_mode", "epochs", "probes",
                  "data_dir", "models")
MODEL_KEYS = ("description", "grid", "settings", "datasets", "seeds", "text_mode", "epochs")
# Runs one grid may have. Counted before any run is built, so a grid of 10**7 configurations is refused at once
# instead of spending hours expanding it (1000 runs take about 0.1 s to build and a folder scan of the same order).
MAX_GRID_RUNS = 100_000


class GridError(UserError):
    """A grid file that cannot be used; the message names the file and the key."""

    def __init__(self, path: Path, key: str | None, problem: str):
        super().__init__(f"{path}: {key + ': ' if key else ''}{problem}")


@dataclass(frozen=True)
class ModelGrid:
    """One model's part of a sweep: every combination of `grid` values, each with `settings` added."""

    model: str
    grid: tuple[tuple[str, tuple[Any, ...]], ...]   # (setting, alternatives) in file order
    settings: tuple[tuple[str, Any], ...]           # fixed (setting, value)
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    text_mode: str | None
    epochs: int | None

    def run_count(self) -> int:
        """Runs this model contributes, computed without building them (a product of counts)."""
        configurations = 1
        for _, alternatives in self.grid:
            configurations *= len(alternatives)
        return configurations * len(self.datasets) * len(self.seeds)

    def configurations(self) -> Iterator[dict[str, Any]]:
        """Each combination of the grid, fixed settings included, in file order (the last key varies fastest)."""
        keys = [key for key, _ in self.grid]
        for values in itertools.product(*(alternatives for _, alternatives in self.grid)):
            yield {**dict(self.settings), **dict(zip(keys, values))}


@dataclass(frozen=True)
class SweepGrid:
    """A parsed, checked grid file. `specs` lists its runs, each at most once, in a fixed order."""

    path: Path
    models: tuple[ModelGrid, ...]
    results: Path
    selections: Path
    data_dir: Path | None
    probes: bool
    specs: tuple[RunSpec, ...]
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


Checksums = Callable[[str], str]   # dataset name -> the checksum that names its runs


def load_grid(path: Path, catalog: Catalog, results: Path | None = None, checksums: Checksums | None = None
              ) -> SweepGrid:
    """Read and check a grid file; `results` (a command-line option) replaces the file's results folder.

    Every dataset of the grid must be found (its data names the runs: `mer_bench.runspec`), so missing data is one
    error here, before any run starts, not a failure recorded for each run. `checksums` replaces the lookup of
    each dataset's checksum (tests; callers that know them)."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such grid file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read grid file ({error}).") from None
    except tomllib.TOMLDecodeError as error:
        raise GridError(path, None, f"not valid TOML ({error}).") from None
    return parse_grid(path, document, catalog, results, checksums)


def parse_grid(path: Path, document: Mapping[str, Any], catalog: Catalog, results: Path | None = None,
               checksums: Checksums | None = None) -> SweepGrid:
    check_keys(path, document, TOP_LEVEL_KEYS, "")
    folder = path.resolve().parent
    results_dir = Path(results).resolve() if results else _folder(path, document, "results", folder, required=True)
    selections = _folder(path, document, "selections", folder) or results_dir.with_name(results_dir.name + "-selections")
    models_table = _table(path, document, "models", required=True)
    if not models_table:
        raise GridError(path, "models", "names no model; add a [models.NAME] table.")
    defaults = {
        "datasets": _names(path, document, "datasets"),
        "seeds": _seeds(path, document, "seeds"),
        "text_mode": _text_mode(path, document, "text_mode"),
        "epochs": _epochs(path, document, "epochs"),
    }
    models = tuple(_model_grid(path, name, table, defaults) for name, table in models_table.items())
    grid = SweepGrid(path=path, models=models, results=results_dir, selections=selections,
                     data_dir=_folder(path, document, "data_dir", folder),
                     probes=_typed(path, document, "probes", bool, "true or false", default=True), specs=(),
                     description=_typed(path, document, "description", str, "a string", default=""))
    check_size(grid)
    names_checked(grid, catalog)
    if checksums is None:
        checksums = dataset_checksums(grid, catalog)
    return dataclasses.replace(grid, specs=expand(grid, catalog, checksums))


def check_size(grid: SweepGrid) -> None:
    runs = sum(model_grid.run_count() for model_grid in grid.models)
    if runs > MAX_GRID_RUNS:
        sizes = ", ".join(f"{m.model} {m.run_count():,}" for m in grid.models)
        raise GridError(grid.path, None, f"{runs:,} runs ({sizes}) is more than the {MAX_GRID_RUNS:,} one sweep may "
                                         "have; split the grid into several files or narrow it.")


def names_checked(grid: SweepGrid, catalog: Catalog) -> None:
    """Models and datasets exist (typos fail here, named), before any data is looked for."""
    for model_grid in grid.models:
        key = f"models.{model_grid.model}"
        _checked(grid.path, key, lambda: catalog.model(model_grid.model))
        for dataset in model_grid.datasets:
            _checked(grid.path, key, lambda: catalog.dataset(dataset))


def dataset_checksums(grid: SweepGrid, catalog: Catalog) -> Checksums:
    """Each dataset of the grid found and identified once (from the prepared cache, else by hashing; generated data
    by generating it). Every missing dataset is reported in one line, so one look at the message says what to get."""
    names = list(dict.fromkeys(dataset for model_grid in grid.models for dataset in model_grid.datasets))
    found: dict[str, str] = {}
    missing: list[tuple[str, UserError]] = []
    for name in names:
        try:
            found[name] = data_checksum(catalog, name, grid.data_dir)
        except UserError as error:
            missing.append((name, error))
    if missing:
        others = f" (missing too: {', '.join(name for name, _ in missing[1:])})" if len(missing) > 1 else ""
        raise UserError(f"{grid.path}: {missing[0][1]}{others} (a grid file names its folder with data_dir)")
    return found.__getitem__


def expand(grid: SweepGrid, catalog: Catalog, checksums: Checksums) -> tuple[RunSpec, ...]:
    """Every run of the grid as a checked `RunSpec` (mistyped settings fail here, named). Settings are parsed once
    per configuration; the runs of a configuration differ only in dataset and seed."""
    specs: dict[RunSpec, None] = {}   # a dict keeps the first occurrence of a run listed twice, in order
    for model_grid in grid.models:
        key = f"models.{model_grid.model}"
        first = model_grid.datasets[0]
        bases = [_checked(grid.path, key, lambda: make_spec(
                    catalog, model_grid.model, first, model_grid.seeds[0],
                    {name: setting_text(value) for name, value in configuration.items()},
                    model_grid.text_mode, model_grid.epochs))
                 for configuration in model_grid.configurations()]
        for dataset in model_grid.datasets:
            checksum = checksums(dataset)
            for base in bases:
                for seed in model_grid.seeds:
                    specs.setdefault(dataclasses.replace(base, dataset=dataset, seed=seed, data_sha256=checksum), None)
    return tuple(specs)


def _checked(path: Path, key: str, build: Callable[[], Any]) -> Any:
    """Run `build`; a user error from the catalog or the model's config is re-raised naming the file and key."""
    try:
        return build()
    except GridError:
        raise
    except UserError as error:
        raise GridError(path, key, str(error)) from None


def setting_text(value: Any) -> str:
    """A TOML value as the text `--set key=value` would give, so a grid run and a `mer-bench run` hash alike."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(setting_text(item) for item in value)
    return str(value)


def _model_grid(path: Path, name: str, table: Any, defaults: dict[str, Any]) -> ModelGrid:
    key = f"models.{name}"
    if not isinstance(table, dict):
        raise GridError(path, key, "must be a table ([models.NAME]).")
    check_keys(path, table, MODEL_KEYS, key + ".")
    grid = _table(path, table, "grid", prefix=key + ".")
    settings = _table(path, table, "settings", prefix=key + ".")
    for setting, alternatives in grid.items():
        if not isinstance(alternatives, list) or not alternatives:
            raise GridError(path, f"{key}.grid.{setting}", "must be a non-empty list of values to try.")
        if len(set(map(setting_text, alternatives))) != len(alternatives):
            raise GridError(path, f"{key}.grid.{setting}", "lists a value twice.")
        _check_values(path, f"{key}.grid.{setting}", alternatives)
        if setting in settings:
            raise GridError(path, f"{key}.settings.{setting}", "is also in the grid; keep it in one place.")
    _check_values(path, f"{key}.settings", list(settings.values()))
    datasets = _names(path, table, "datasets", key + ".") or defaults["datasets"]
    seeds = _seeds(path, table, "seeds", key + ".") or defaults["seeds"]
    if not datasets:
        raise GridError(path, "datasets", f"no datasets for model '{name}' (set datasets at the top or in {key}).")
    if not seeds:
        raise GridError(path, "seeds", f"no seeds for model '{name}' (set seeds at the top or in {key}).")
    return ModelGrid(model=name, grid=tuple((k, tuple(v)) for k, v in grid.items()), settings=tuple(settings.items()),
                     datasets=datasets, seeds=seeds,
                     text_mode=_text_mode(path, table, "text_mode", key + ".") or defaults["text_mode"],
                     epochs=_epochs(path, table, "epochs", key + ".") or defaults["epochs"])


def check_keys(path: Path, table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            problem = str(unknown_name("key", key, allowed))
            raise GridError(path, f"{prefix}{key}", problem)


def _check_values(path: Path, key: str, values: list[Any]) -> None:
    for value in values:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, (str, int, float, bool)) for item in items):
            raise GridError(path, key, f"{value!r} is not a number, string, boolean or list of them.")


def _table(path: Path, table: Mapping[str, Any], key: str, required: bool = False, prefix: str = "") -> dict:
    if key not in table:
        if required:
            raise GridError(path, prefix + key, "is missing.")
        return {}
    if not isinstance(table[key], dict):
        raise GridError(path, prefix + key, "must be a table.")
    return dict(table[key])


def _typed(path: Path, table: Mapping[str, Any], key: str, kind: type, what: str, prefix: str = "",
           default: Any = None) -> Any:
    value = table.get(key, default)
    # bool is an int in Python; TOML keeps them apart, and so do we.
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise GridError(path, prefix + key, f"must be {what}, got {value!r}.")
    return value


def _names(path: Path, table: Mapping[str, Any], key: str, prefix: str = "") -> tuple[str, ...]:
    names = _typed(path, table, key, list, "a list of names", prefix) or []
    if not all(isinstance(name, str) and name for name in names):
        raise GridError(path, prefix + key, "must be a list of names (strings).")
    return tuple(dict.fromkeys(names))


def _seeds(path: Path, table: Mapping[str, Any], key: str, prefix: str = "") -> tuple[int, ...]:
    seeds = _typed(path, table, key, list, "a list of integers", prefix) or []
    low, high = SEED_RANGE   # what numpy and torch seeding accept
    if not all(isinstance(seed, int) and not isinstance(seed, bool) and low <= seed <= high for seed in seeds):
        raise GridError(path, prefix + key, f"must be a list of integers from {low} to {high} (2**32-1).")
    return tuple(dict.fromkeys(seeds))


def _text_mode(path: Path, table: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    value = _typed(path, table, key, str, "a string", prefix)
    if value is not None and value not in TEXT_MODES:
        raise GridError(path, prefix + key, f"'{value}' is not a text mode (use {' or '.join(TEXT_MODES)}).")
    return value


def _epochs(path: Path, table: Mapping[str, Any], key: str, prefix: str = "") -> int | None:
    value = _typed(path, table, key, int, "a positive integer", prefix)
    if value is not None and value < 1:
        raise GridError(path, prefix + key, f"must be a positive integer, got {value}.")
    return value


def _folder(path: Path, table: Mapping[str, Any], key: str, base: Path, required: bool = False) -> Path | None:
    value = _typed(path, table, key, str, "a folder path (string)")
    if value is None:
        if required:
            raise GridError(path, key, "is missing: name the folder that holds this sweep's result files.")
        return None
    return (base / Path(value).expanduser()).resolve()
