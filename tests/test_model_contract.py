"""The model contract, checked for every registered model: fit, predict shapes, determinism, save/load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mer_bench.model import FitContext, build_config
from mer_bench.plugins import get_catalog
from mer_bench.runner import data_info
from mer_bench.training import seed_everything

MODELS = sorted(get_catalog().models)
CASES = [(name, mode) for name in MODELS for mode in get_catalog().models[name].value.text_modes]


def train(model_name, data, text_mode, bert_dir, tmp_path, seed=1111):
    model_class = get_catalog().model(model_name).value
    info = data_info(data, text_mode)
    if text_mode == "bert":
        info = dataclasses.replace(info, text_model=str(bert_dir))
    model_class.check_dataset(info)
    config = build_config(model_class, info, model_class.smoke_settings)
    seed_everything(seed)
    model = model_class(config, info)
    model.fit(data.train, data.valid, FitContext(torch.device("cpu"), seed, tmp_path, max_epochs=2))
    return model, config, info


@pytest.mark.parametrize("model_name,text_mode", CASES)
def test_model_contract(model_name, text_mode, tiny_data, tiny_bert_dir, tmp_path):
    model, config, info = train(model_name, tiny_data, text_mode, tiny_bert_dir, tmp_path / "a")
    first = model.predict(tiny_data.test).check(len(tiny_data.test), model.outputs, model_name)
    for kind in model.outputs:
        value = getattr(first, kind)
        assert value.shape[0] == len(tiny_data.test)
        assert torch.isfinite(value).all(), f"{model_name} predicted non-finite {kind}"
    if first.probs is not None:
        torch.testing.assert_close(first.probs.sum(dim=1), torch.ones(len(tiny_data.test)), atol=1e-4, rtol=0)

    again = model.predict(tiny_data.test)
    _assert_same(first, again, "predict() changed the model or is not deterministic")

    twin, _, _ = train(model_name, tiny_data, text_mode, tiny_bert_dir, tmp_path / "b")
    _assert_same(first, twin.predict(tiny_data.test), "the same seed gave different predictions")

    model.save(tmp_path / "saved")
    restored = type(model)(config, info)
    restored.load(tmp_path / "saved")
    _assert_same(first, restored.predict(tiny_data.test), "save/load did not round-trip")
    assert model.parameter_count() >= 0


def _assert_same(expected, actual, message):
    for kind in ("score", "probs"):
        if getattr(expected, kind) is not None:
            torch.testing.assert_close(getattr(actual, kind).float().cpu(), getattr(expected, kind),
                                       atol=1e-5, rtol=1e-5, msg=message)
