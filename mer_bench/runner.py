"""RunSpec -> RunResult. The runner is the only code that touches the test split.

Order of events for one run: load data, build the model, ``fit(train, valid)``, predict valid, then predict test once
and score the test split and its subsets from those same predictions. Nothing after the test prediction feeds back
into the model.
"""

from __future__ import annotations

import datetime
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mer_bench.data.loading import load_dataset
from mer_bench.data.split import MERData, Split
from mer_bench.data.subsets import subset_indices
from mer_bench.environment import environment
from mer_bench.errors import UserError
from mer_bench.metrics import compute_metrics
from mer_bench.model import (TEXT_MODES, DataInfo, FitContext, Model, NullProgress, Predictions, Progress,
                             build_config, config_to_dict, parse_overrides)
from mer_bench.plugins import Catalog, Entry, get_catalog
from mer_bench.probes import run_probes
from mer_bench.results import RunResult, read_result, write_result
from mer_bench.runspec import RunSpec
from mer_bench.training import resolve_device, seed_everything


@dataclass
class RunOptions:
    """How to run (not what): where data and results live, device, overwrite and probe switches."""

    out_dir: Path = Path("results")
    data_dir: Path | None = None
    data_file: Path | None = None
    device: str = "auto"
    force: bool = False
    probes: bool = True
    progress: Progress = field(default_factory=NullProgress)


@dataclass(frozen=True)
class RunOutcome:
    spec: RunSpec
    path: Path
    result: RunResult
    skipped: bool            # True when an existing result file was reused


def make_spec(catalog: Catalog, model: str, dataset: str, seed: int, settings: dict[str, str] | None = None,
              text_mode: str | None = None, epochs: int | None = None) -> RunSpec:
    """Check names and settings against the catalog and build a canonical RunSpec (typos fail here, before work)."""
    model_class = catalog.model(model).value
    catalog.dataset(dataset)
    settings = dict(settings or {})
    text_mode = settings.pop("text_mode", None) or text_mode or "features"
    if text_mode not in TEXT_MODES:
        raise UserError(f"Unknown text mode '{text_mode}' (use {' or '.join(TEXT_MODES)}).")
    overrides = parse_overrides(model_class, settings)
    return RunSpec(model, dataset, int(seed), tuple(overrides.items()), text_mode, epochs)


def run_many(specs: list[RunSpec], options: RunOptions, catalog: Catalog | None = None,
             on_start: Callable[[RunSpec], None] | None = None,
             on_done: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """Run each spec in order, loading each dataset at most once and only if some run still has to be done.

    `on_start` and `on_done` are called around every run (the CLI shows progress with them).
    """
    catalog = catalog or get_catalog()
    loaded: dict[str, MERData] = {}
    outcomes = []
    for spec in specs:
        if on_start is not None:
            on_start(spec)
        path = spec.result_path(options.out_dir)
        if path.exists() and not options.force:
            outcome = RunOutcome(spec, path, read_result(path), skipped=True)
        else:
            if spec.dataset not in loaded:
                loaded[spec.dataset] = load_dataset(catalog.dataset(spec.dataset).value, options.data_dir,
                                                    options.data_file)
            outcome = run_one(spec, loaded[spec.dataset], options, catalog)
        if on_done is not None:
            on_done(outcome)
        outcomes.append(outcome)
    return outcomes


def run_one(spec: RunSpec, data: MERData, options: RunOptions, catalog: Catalog) -> RunOutcome:
    """Train, predict and score one run on already loaded data; write its result file atomically."""
    entry = catalog.model(spec.model)
    model_class: type[Model] = entry.value
    info = data_info(data, spec.text_mode)
    model_class.check_dataset(info)
    config = build_config(model_class, info, dict(spec.overrides))
    device = resolve_device(options.device)
    started = time.perf_counter()
    seed_everything(spec.seed)
    model = model_class(config, info)
    with tempfile.TemporaryDirectory(prefix=f"mer-bench-{spec.run_id}-") as scratch:
        ctx = FitContext(device=device, seed=spec.seed, run_dir=Path(scratch), progress=options.progress,
                         max_epochs=spec.epochs)
        timings, valid_predictions, test_predictions = _fit_and_predict(model, data, ctx)
    probes = None
    if options.probes:
        probes, timings["probes"] = _run_probes(model, data, test_predictions, spec)
    timings["total"] = time.perf_counter() - started
    test_subsets = subset_indices(data.test)
    result = RunResult(
        spec=spec, model=_model_record(entry, model, config), dataset=_dataset_record(data, test_subsets),
        metrics={"valid": _score_split(data, data.valid, valid_predictions, subset_indices(data.valid)),
                 "test": _score_split(data, data.test, test_predictions, test_subsets)},
        predictions=prediction_record(data.test, test_predictions, test_subsets), timings=timings,
        parameters=int(model.parameter_count()), probes=probes,
        environment=environment(device, {"name": entry.plugin, "distribution": entry.distribution,
                                         "version": entry.version}),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return RunOutcome(spec, write_result(result, options.out_dir), result, skipped=False)


def data_info(data: MERData, text_mode: str) -> DataInfo:
    spec = data.spec
    if text_mode == "features" and data.train.text is None:
        raise UserError(f"Dataset '{spec.name}' has no precomputed text features ('text'); use --text-mode bert.")
    if text_mode == "bert" and data.train.text_bert is None:
        raise UserError(f"Dataset '{spec.name}' has no token ids ('text_bert'); use --text-mode features.")
    return DataInfo(dataset=spec.name, style=spec.style, feature_dims=data.feature_dims, seq_lens=data.seq_lens,
                    has_unimodal_labels=data.train.unimodal_labels is not None, text_model=spec.text_model,
                    text_mode=text_mode, synthetic=spec.synthetic)


def _fit_and_predict(model: Model, data: MERData, ctx: FitContext):
    """The one place the test split reaches a model: after fit has returned, once."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    model.fit(data.train, data.valid, ctx)
    timings["fit"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with torch.no_grad():
        valid_predictions = _checked_predict(model, data.valid)
    timings["predict_valid"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with torch.no_grad():
        test_predictions = _checked_predict(model, data.test)
    timings["predict_test"] = time.perf_counter() - clock
    return timings, valid_predictions, test_predictions


def _checked_predict(model: Model, split: Split) -> Predictions:
    return model.predict(split).check(len(split), model.outputs, model.name, split=split)


def _run_probes(model: Model, data: MERData, reference: Predictions, spec: RunSpec) -> tuple[Any, float]:
    """Modality reliance and robustness probes on the test split, after the scored prediction (see probes.py)."""
    clock = time.perf_counter()
    with torch.no_grad():
        results = run_probes(model, data.test, reference, data.spec.style, spec.seed)
    return results, time.perf_counter() - clock


def _score_split(data: MERData, split: Split, predictions: Predictions,
                 subsets: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """{subset: {track: {metric: value}}}, with "all" for the whole split."""
    scored = {"all": _score(data, split.label, predictions)}
    for name, index in (subsets or {}).items():
        scored[name] = _score(data, split.label.index_select(0, index), predictions.take(index))
    return scored


def _score(data: MERData, labels: torch.Tensor, predictions: Predictions) -> dict[str, Any]:
    to_numpy = lambda value: None if value is None else value.numpy()  # noqa: E731
    return compute_metrics(data.spec.style, labels.numpy(), to_numpy(predictions.score), to_numpy(predictions.probs))


def prediction_record(split: Split, predictions: Predictions,
                      subsets: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """Per-sample test outputs, kept so paired statistics can be computed later without retraining."""
    record: dict[str, Any] = {"ids": list(split.ids), "label": split.label.tolist()}
    if predictions.score is not None:
        record["score"] = predictions.score.tolist()
    if predictions.probs is not None:
        record["probs"] = predictions.probs.tolist()
    record["extras"] = {name: value.tolist() for name, value in predictions.extras.items()}
    record["unimodal_labels"] = None if split.unimodal_labels is None else split.unimodal_labels.tolist()
    record["subsets"] = None if subsets is None else {name: index.tolist() for name, index in subsets.items()}
    return record


def _model_record(entry: Entry, model: Model, config: Any) -> dict[str, Any]:
    return {"name": entry.name, "plugin": entry.plugin, "distribution": entry.distribution, "version": entry.version,
            "outputs": sorted(model.outputs), "config": config_to_dict(config), "summary": model.summary}


def _dataset_record(data: MERData, subsets: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    return {
        "name": data.spec.name, "title": data.spec.title, "style": data.spec.style, "synthetic": data.spec.synthetic,
        "source": data.source, "sha256": data.sha256,
        "sizes": {name: len(data.split(name)) for name in ("train", "valid", "test")},
        "subsets": None if subsets is None else {name: int(index.numel()) for name, index in subsets.items()},
        "notes": list(data.notes),
    }
