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

from mer_bench.bert import chosen_bert
from mer_bench.data.align import alignment_seen
from mer_bench.data.loading import dataset_checksum, generated_data, load_dataset
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
from mer_bench.runlock import RunLock, describe_holder, lock_path, read_lock
from mer_bench.runspec import SEED_RANGE, RunSpec
from mer_bench.training import resolve_device, seed_everything


@dataclass
class RunOptions:
    """How to run (not what): where data and results live, device, overwrite and probe switches."""

    out_dir: Path = Path("results")
    data_dir: Path | None = None
    data_file: Path | None = None
    device: str = "auto"
    force: bool = False
    force_dataset: bool = False   # score a file as `--dataset` even when its shapes are another dataset's
    probes: bool = True
    progress: Progress = field(default_factory=NullProgress)
    on_wait: Callable[[RunSpec, str], None] | None = None   # told when a run waits for another process's lock
    lock_poll_s: float = 2.0


@dataclass(frozen=True)
class RunOutcome:
    spec: RunSpec
    path: Path
    result: RunResult
    skipped: bool            # True when an existing result file was reused


def make_spec(catalog: Catalog, model: str, dataset: str, seed: int, settings: dict[str, str] | None = None,
              text_mode: str | None = None, epochs: int | None = None, data_sha256: str | None = None) -> RunSpec:
    """Check names and settings against the catalog and build a canonical RunSpec (typos fail here, before work).

    `data_sha256` is the data's checksum (`data_checksum`); every spec that is run should have it, so its id names
    the data. Left None, the spec describes the run without naming its data (as in result files of old versions)."""
    model_class = catalog.model(model).value
    catalog.dataset(dataset)
    settings = dict(settings or {})
    text_mode = settings.pop("text_mode", None) or text_mode or default_text_mode(model_class)
    if text_mode not in TEXT_MODES:
        raise UserError(f"Unknown text mode '{text_mode}' (use {' or '.join(TEXT_MODES)}).")
    overrides = parse_overrides(model_class, settings)
    return RunSpec(model, dataset, check_seed(seed), tuple(overrides.items()), text_mode, epochs, data_sha256)


def default_text_mode(model_class) -> str:
    """Precomputed features where the model takes them (cheap, and MMSA's default), else its only way to read text:
    CENET and MAG-BERT work inside BERT, so asking for them names text mode "bert" without a flag."""
    return "features" if "features" in model_class.text_modes else model_class.text_modes[0]


def check_seed(seed: int) -> int:
    """Seeds go to numpy and torch, which accept 0..2**32-1; anything else is refused here, before any work."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
        raise UserError(f"Seed {seed!r} is out of range: seeds are integers from {low} to {high} (2**32-1), as "
                        "numpy and torch seeding accept.")
    return seed


def data_checksum(catalog: Catalog, dataset: str, data_dir: Path | None = None, data_file: Path | None = None) -> str:
    """The checksum that names runs on this dataset, found before deciding to reuse any result (the data is not
    read when the prepared cache knows the file; see `mer_bench.data.loading.dataset_checksum`)."""
    return dataset_checksum(catalog.dataset(dataset).value, data_dir, data_file)


def run_many(specs: list[RunSpec], options: RunOptions, catalog: Catalog | None = None,
             on_start: Callable[[RunSpec], None] | None = None,
             on_done: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """Run each spec in order, loading each dataset at most once and only if some run still has to be done.

    Each run is trained under its lock (`mer_bench.runlock`), as in a sweep: when another process holds it, this one
    waits (telling `options.on_wait`) and then reuses that process's result, so two identical `mer-bench run`s never
    train the same run twice. `on_start` and `on_done` are called around every run (the CLI shows progress).
    """
    catalog = catalog or get_catalog()
    loaded: dict[str, MERData] = {}

    def data_for(spec: RunSpec) -> MERData:
        if spec.dataset not in loaded:
            loaded[spec.dataset] = load_checked(catalog, spec.dataset, options)
        return check_data_identity(spec, loaded[spec.dataset])

    outcomes = []
    for spec in specs:
        if on_start is not None:
            on_start(spec)
        outcome = _reuse_or_run(spec, options, catalog, data_for)
        if on_done is not None:
            on_done(outcome)
        outcomes.append(outcome)
    return outcomes


def _reuse_or_run(spec: RunSpec, options: RunOptions, catalog: Catalog,
                  data_for: Callable[[RunSpec], MERData]) -> RunOutcome:
    path = spec.result_path(options.out_dir)
    if path.exists() and not options.force:
        return RunOutcome(spec, path, read_result(path), skipped=True)
    data = data_for(spec)      # before the lock (which creates the run's folder): unusable data leaves nothing behind
    lock = RunLock(lock_path(spec, options.out_dir))
    waited = False
    while not lock.acquire():
        if not waited and options.on_wait is not None:
            options.on_wait(spec, describe_holder(read_lock(lock.path)))
        waited = True
        time.sleep(options.lock_poll_s)
    try:
        if path.exists() and (waited or not options.force):   # the holder we waited for has just written it
            return RunOutcome(spec, path, read_result(path), skipped=True)
        return run_one(spec, data, options, catalog)
    finally:
        lock.release()


def load_checked(catalog: Catalog, dataset: str, options: RunOptions) -> MERData:
    """The dataset, refused when its file's shapes say it is another registered dataset (unless forced)."""
    spec = catalog.dataset(dataset).value
    if spec.generate is not None and options.data_file is None:
        return generated_data(spec)   # the same object the checksum was computed from: generated once
    data = load_dataset(spec, options.data_dir, options.data_file)
    if not options.force_dataset:
        refuse_other_dataset(data, catalog)
    return data


def refuse_other_dataset(data: MERData, catalog: Catalog) -> None:
    """A file whose audio/vision feature sizes differ from its dataset's and equal another registered dataset's
    holds that other dataset: scoring it as the one asked for (MOSI-style metrics on SIMS labels, say) would publish
    numbers of the wrong dataset. Validation only warns about the sizes, since rebuilt features may legitimately
    differ; here the match with another dataset decides. `--force-dataset` overrides."""
    expected = tuple(data.spec.feature_dims[1:])
    found = tuple(data.feature_dims[1:])   # (audio, vision) feature sizes of the file
    if found == expected:
        return
    others = sorted(entry.name for entry in catalog.datasets.values()
                    if entry.name != data.spec.name and tuple(entry.value.feature_dims[1:]) == found
                    and entry.value.generate is None)
    if others:
        raise UserError(f"{data.source}: audio/vision feature sizes {found[0]}/{found[1]} are those of "
                        f"{' and '.join(repr(name) for name in others)}, not of '{data.spec.name}' "
                        f"({expected[0]}/{expected[1]}); pass --dataset {others[0]}, or --force-dataset to score it "
                        f"as '{data.spec.name}' anyway.")


def check_data_identity(spec: RunSpec, data: MERData) -> MERData:
    """The data about to be trained on is the data the run id names (it may have changed since it was checked)."""
    if spec.data_sha256 is not None and data.sha256 != spec.data_sha256:
        raise UserError(f"{data.source}: its checksum is {data.sha256[:12]}..., but run {spec.run_id} is for data "
                        f"{spec.data_sha256[:12]}... (did the file change during the run?); start again.")
    return data


def data_options(options: RunOptions, data: MERData) -> tuple[str, ...]:
    """Where the data came from, as `mer-bench run` options for the recorded command: --data-file or --data-dir as
    the run used them (absolute), the file actually read when it was found through $MER_BENCH_DATA or the default
    folder (so the command works without that environment), nothing for generated data."""
    force = ("--force-dataset",) if options.force_dataset else ()
    if data.spec.generate is not None and options.data_file is None:
        return force
    if options.data_dir is not None and options.data_file is None:
        return ("--data-dir", str(Path(options.data_dir).resolve()), *force)
    return ("--data-file", str(Path(options.data_file or data.source).resolve()), *force)


def run_one(spec: RunSpec, data: MERData, options: RunOptions, catalog: Catalog) -> RunOutcome:
    """Train, predict and score one run on already loaded data; write its result file atomically. The caller holds
    the run's lock (`run_many`, or a sweep worker)."""
    check_data_identity(spec, data)
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
        probes, timings["probes"] = _run_probes(model, data, test_predictions, spec, options.progress)
    timings["total"] = time.perf_counter() - started
    test_subsets = subset_indices(data.test)
    result = RunResult(
        spec=spec, model=_model_record(entry, model, config, bert_used(spec, config, data)),
        dataset=_dataset_record(data, test_subsets, alignment_seen(model_class.needs_aligned, info.aligned)),
        metrics={"valid": _score_split(data, data.valid, valid_predictions, subset_indices(data.valid)),
                 "test": _score_split(data, data.test, test_predictions, test_subsets)},
        predictions=prediction_record(data.test, test_predictions, test_subsets), timings=timings,
        parameters=int(model.parameter_count()), probes=probes,
        environment=environment(device, {"name": entry.plugin, "distribution": entry.distribution,
                                         "version": entry.version}),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=spec.command(data_options(options, data)), extra=_claims(model, test_predictions, test_subsets, probes))
    return RunOutcome(spec, write_result(result, options.out_dir), result, skipped=False)


def _claims(model: Model, test: Predictions, subsets: dict[str, torch.Tensor] | None, probes: dict | None) -> dict:
    """{"claims": ...} for a model with an optional `claim_checks(test predictions, test subsets, probes)` method
    (what its mechanisms did, e.g. CMC's; called after the fit, so it may look at the test split), else {}."""
    checks = getattr(model, "claim_checks", None)
    return {"claims": checks(test, subsets, probes)} if checks is not None else {}


def data_info(data: MERData, text_mode: str) -> DataInfo:
    spec = data.spec
    if text_mode == "features" and data.train.text is None:
        raise UserError(f"Dataset '{spec.name}' has no precomputed text features ('text'); use --text-mode bert.")
    if text_mode == "bert" and data.train.text_bert is None:
        raise UserError(f"Dataset '{spec.name}' has no token ids ('text_bert'); use --text-mode features.")
    return DataInfo(dataset=spec.name, style=spec.style, feature_dims=data.feature_dims, seq_lens=data.seq_lens,
                    has_unimodal_labels=data.train.unimodal_labels is not None, text_model=spec.text_model,
                    text_mode=text_mode, synthetic=spec.synthetic, aligned=spec.aligned)


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


def _run_probes(model: Model, data: MERData, reference: Predictions, spec: RunSpec,
                progress: Progress) -> tuple[Any, float]:
    """Modality reliance and robustness probes on the test split, after the scored prediction (mer_bench/probes)."""
    clock = time.perf_counter()
    with torch.no_grad():
        results = run_probes(model, data.test, reference, data.spec.style, spec.seed, progress)
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


def _model_record(entry: Entry, model: Model, config: Any, bert: str | None) -> dict[str, Any]:
    return {"name": entry.name, "plugin": entry.plugin, "distribution": entry.distribution, "version": entry.version,
            "outputs": sorted(model.outputs), "config": config_to_dict(config), "summary": model.summary,
            **({"bert": bert} if bert else {})}


def bert_used(spec: RunSpec, config: Any, data: MERData) -> str | None:
    """The BERT a text-mode "bert" run read the ids with: the model's `bert_model` setting, else the dataset's (a
    checkpoint name, a folder, or bert.RANDOM_SMALL_BERT for generated data, trained from scratch)."""
    if spec.text_mode != "bert":
        return None
    return chosen_bert(getattr(config, "bert_model", ""), data.spec.text_model)


def _dataset_record(data: MERData, subsets: dict[str, torch.Tensor] | None, alignment: str | None) -> dict[str, Any]:
    """What the run was scored on; `alignment` is the alignment the model saw (`mer_bench.data.align`)."""
    return {
        "name": data.spec.name, "title": data.spec.title, "style": data.spec.style, "synthetic": data.spec.synthetic,
        "source": data.source, "sha256": data.sha256,
        "sizes": {name: len(data.split(name)) for name in ("train", "valid", "test")},
        "subsets": None if subsets is None else {name: int(index.numel()) for name, index in subsets.items()},
        "notes": list(data.notes), "alignment": alignment,
        **({"generator": data.spec.generator} if data.spec.generator else {}),   # generated data: every knob
    }
