"""Result files with known contents for the leaderboard tests, built like the runner builds them (metrics computed
from the stored predictions, so the paired tests and the cells agree), and checks that they are valid result files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mer_bench.metrics import compute_metrics
from mer_bench.results import RunResult, validate, write_json_atomic
from mer_bench.runspec import RunSpec

SUBSETS = ("consistent", "inconsistent", "text-conflict")


def synthetic_labels(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SIMS-like labels on a 0.2 grid in [-1, 1] and unimodal labels (T, A, V) that agree about 60% of the time."""
    rng = np.random.default_rng(seed)
    label = np.round(rng.uniform(-1, 1, n) * 5) / 5
    unimodal = np.where(rng.random((n, 3)) < 0.6, label[:, None], -label[:, None] + 0.2)
    return label, unimodal


def subset_index(label: np.ndarray, unimodal: np.ndarray) -> dict[str, list[int]]:
    """The subset rule of mer_bench.data.subsets, on numpy arrays."""
    agrees = np.sign(unimodal) == np.sign(label)[:, None]
    masks = {"consistent": agrees.all(axis=1), "inconsistent": ~agrees.all(axis=1), "text-conflict": ~agrees[:, 0]}
    return {name: np.flatnonzero(mask).tolist() for name, mask in masks.items()}


def noisy_predictions(label: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A score near the label and 3-class probabilities that mostly pick the label's polarity."""
    rng = np.random.default_rng(seed)
    score = label + rng.normal(0, noise, label.shape)
    logits = rng.normal(0, noise * 3, (len(label), 3))
    logits[np.arange(len(label)), (np.sign(label) + 1).astype(int)] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return score, probs


def result_dict(model: str, seed: int, label: np.ndarray, score: np.ndarray | None = None,
                probs: np.ndarray | None = None, *, unimodal: np.ndarray | None = None, dataset: str = "synthetic",
                synthetic: bool = True, style: str = "sims", sha256: str | None = None,
                overrides: dict[str, Any] | None = None, gates: np.ndarray | None = None,
                probes: dict[str, Any] | None = None, created: str = "2024-05-01T12:00:00+00:00",
                keep_predictions: bool = True) -> dict[str, Any]:
    """A complete, schema-valid result dictionary whose metrics are computed from the given predictions."""
    spec = RunSpec(model, dataset, seed, tuple((overrides or {}).items()))
    subsets = None if unimodal is None else subset_index(label, unimodal)
    test = {"all": compute_metrics(style, label, score, probs)}
    for name, index in (subsets or {}).items():
        test[name] = compute_metrics(style, label[index], None if score is None else score[index],
                                     None if probs is None else probs[index])
    predictions: dict[str, Any] = {"ids": [f"clip_{i:04d}" for i in range(len(label))], "label": label.tolist(),
                                   "extras": {}, "unimodal_labels": None if unimodal is None else unimodal.tolist(),
                                   "subsets": subsets}
    if keep_predictions and score is not None:
        predictions["score"] = score.tolist()
    if keep_predictions and probs is not None:
        predictions["probs"] = probs.tolist()
    if gates is not None:
        predictions["extras"]["gates"] = gates.tolist()
    outputs = sorted(name for name, value in (("score", score), ("probs", probs)) if value is not None)
    result = RunResult(
        spec=spec,
        model={"name": model, "plugin": "fixtures", "distribution": "mer-bench-fixtures", "version": "1.0",
               "outputs": outputs, "config": {"hidden": 32, **(overrides or {})}, "summary": f"{model} for tests"},
        dataset={"name": dataset, "title": dataset.upper(), "style": style, "synthetic": synthetic, "source": "tests",
                 "sha256": sha256 or hashlib.sha256(dataset.encode()).hexdigest(),
                 "sizes": {"train": 10, "valid": 10, "test": len(label)},
                 "subsets": None if subsets is None else {name: len(index) for name, index in subsets.items()},
                 "notes": []},
        metrics={"valid": {"all": test["all"]}, "test": test}, predictions=predictions,
        timings={"fit": 1.5, "predict_valid": 0.1, "predict_test": 0.1, "probes": None, "total": 2.0},
        parameters=12345, probes=probes, created=created,
        environment={"python": "3.11", "torch": "2.3.0", "numpy": "1.26.4", "mer_bench": "0.1.0",
                     "git_commit": "0123456789abcdef0123",
                     "device": "cpu", "device_name": "cpu (2 cores)", "plugin": {"name": "fixtures"}})
    return result.to_json_dict()


def write_result_dict(data: dict[str, Any], out: Path) -> Path:
    spec = data["spec"]
    path = Path(out) / spec["dataset"] / spec["model"].replace("/", "_") / f"{data['run_id']}.json"
    write_json_atomic(path, data)
    return path


def write_board(out: Path, models: dict[str, float], seeds=(1111, 1112, 1113), n: int = 120,
                **options: Any) -> list[Path]:
    """One result file per (model, seed): model name -> prediction noise (lower noise, better model)."""
    label, unimodal = synthetic_labels(n)
    paths = []
    for rank, (model, noise) in enumerate(models.items()):
        for seed in seeds:
            score, probs = noisy_predictions(label, noise, seed * 100 + rank)
            paths.append(write_result_dict(result_dict(model, seed, label, score, probs, unimodal=unimodal,
                                                       **options), out))
    return paths


def test_fixture_results_are_valid_result_files(tmp_path):
    paths = write_board(tmp_path, {"good": 0.2, "<script>alert(1)</script>": 0.5})
    assert len(paths) == 6
    for path in paths:
        data = json.loads(path.read_text())
        validate(data, str(path))     # raises on any schema violation
        assert set(data["metrics"]["test"]) == {"all", *SUBSETS}
        assert set(data["metrics"]["test"]["all"]) == {"regression", "classification"}


def test_fixture_metrics_follow_the_noise_level(tmp_path):
    """The fixtures must order models by noise, or the ranking tests would test nothing."""
    label, _ = synthetic_labels()
    good = result_dict("good", 1, label, *noisy_predictions(label, 0.1, 1))
    bad = result_dict("bad", 1, label, *noisy_predictions(label, 0.8, 1))
    good_mae = good["metrics"]["test"]["all"]["regression"]["mae"]
    bad_mae = bad["metrics"]["test"]["all"]["regression"]["mae"]
    assert good_mae < bad_mae
