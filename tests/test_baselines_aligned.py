"""The aligned-input baselines (mfn) end to end: on the synthetic dataset, which the harness aligns, each must beat
the mean predictor's test MAE by 10 %; on an aligned file (`generate_raw(aligned=True)`, MMSA's aligned layout
without lengths) each runs as the dataset `mosi-aligned` and records the native alignment.

Measured on two busy CPU cores, seed 1111: mfn 8 epochs about 9 s, test MAE 0.27 against the mean predictor's 0.49;
the aligned-file runs (1 epoch, smoke sizes) about 2 s each.
"""

from __future__ import annotations

import pickle

import pytest

from mer_bench.data.align import NATIVE, SEGMENT_MEAN
from mer_bench.data.builtin import synthetic_spec
from mer_bench.data.synthetic import generate_raw
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many, run_one

SEED = 1111
ALIGNED_MODELS = ("mfn",)
EPOCHS = {"mfn": 5}
BEATS_MEAN_BY = 0.9      # a working model's test MAE is at most 90 % of the mean predictor's


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


def run_and_score(model: str, data, out_dir, epochs: int) -> dict:
    catalog = get_catalog()
    spec = make_spec(catalog, model, "synthetic", SEED, epochs=epochs)
    outcome = run_one(spec, data, RunOptions(out_dir=out_dir, device="cpu", probes=False), catalog)
    return read_result(outcome.path).to_json_dict()


@pytest.fixture(scope="module")
def mean_mae(synthetic, tmp_path_factory):
    result = run_and_score("mean", synthetic, tmp_path_factory.mktemp("results"), 1)
    return result["metrics"]["test"]["all"]["regression"]["mae"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ALIGNED_MODELS)
def test_aligned_baseline_beats_the_mean_predictor(model, synthetic, mean_mae, tmp_path):
    result = run_and_score(model, synthetic, tmp_path, EPOCHS[model])
    mae = result["metrics"]["test"]["all"]["regression"]["mae"]
    assert result["dataset"]["alignment"] == SEGMENT_MEAN
    assert mae < BEATS_MEAN_BY * mean_mae, f"{model}: test MAE {mae:.3f} vs mean predictor {mean_mae:.3f}"


def setting_text(value) -> str:
    """How `--set` spells a value: tuples as comma-separated items."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.fixture(scope="module")
def aligned_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "aligned_50.pkl"
    path.write_bytes(pickle.dumps(generate_raw("mosi", (32, 16, 16), 5, aligned=True), protocol=4))
    return path


@pytest.mark.parametrize("model", ALIGNED_MODELS)
def test_aligned_baseline_runs_on_an_aligned_file(model, aligned_file, tmp_path):
    catalog = get_catalog()
    settings = {key: setting_text(value) for key, value in catalog.model(model).value.smoke_settings.items()}
    spec = make_spec(catalog, model, "mosi-aligned", SEED, settings=settings, epochs=1,
                     data_sha256=data_checksum(catalog, "mosi-aligned", None, aligned_file))
    (outcome,) = run_many([spec], RunOptions(out_dir=tmp_path, data_file=aligned_file, device="cpu", probes=False),
                          catalog)
    result = outcome.result
    assert result.dataset["alignment"] == NATIVE and result.dataset["name"] == "mosi-aligned"
    assert len(result.predictions["score"]) == 16
