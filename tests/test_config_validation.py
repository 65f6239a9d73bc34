"""Model settings: every numeric setting of every registered model refuses nonsense with one line naming it."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from mer_bench.cli import main
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, build_config, parse_overrides
from mer_bench.model_config import Bounds, setting_bounds
from mer_bench.plugins import get_catalog

MODELS = sorted(get_catalog().models)
DATASETS = {"mosi": "mosi", "mosei": "mosi", "sims": "sims", "sims-v2": "sims", "synthetic": "sims"}


def info_for(dataset: str) -> DataInfo:
    return DataInfo(dataset=dataset, style=DATASETS[dataset], feature_dims=(768, 33, 709), seq_lens=(50, 400, 55),
                    has_unimodal_labels=DATASETS[dataset] == "sims", text_model="bert-base-uncased",
                    synthetic=dataset == "synthetic")


def numeric_fields(model_name: str) -> list[tuple[dataclasses.Field, type, int | None]]:
    """(field, item type, number of values: 1 for a plain number, 0 for a tuple of any length) of each int or float
    setting."""
    config_class = get_catalog().models[model_name].value.Config
    hints = typing.get_type_hints(config_class)
    out = []
    for field in dataclasses.fields(config_class):
        hint = hints[field.name]
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:
            out.append((field, args[0], 0 if args[-1] is Ellipsis else len(args)))
        elif hint in (int, float):
            out.append((field, hint, 1))
    return out


def bad_numbers(item_type: type, limits: Bounds) -> list[str]:
    """Values just outside the bounds, and for floats NaN and infinity."""
    bad = []
    if limits.low is not None:
        bad.append(limits.low if not limits.low_inclusive else limits.low - (1 if item_type is int else 1e-3))
    if limits.high is not None:
        bad.append(limits.high if not limits.high_inclusive else limits.high + 1)
    texts = [str(int(value)) if item_type is int else repr(float(value)) for value in bad]
    return texts + (["nan", "inf", "-inf"] if item_type is float else [])


def bad_settings(model_name: str) -> list[tuple[str, str, str]]:
    """(model, setting, bad text) for every numeric setting of the model."""
    cases = []
    for field, item_type, length in numeric_fields(model_name):
        limits = setting_bounds(field)
        good = "1" if item_type is int else "0.1"
        for bad in bad_numbers(item_type, limits or Bounds()):
            others = [good] * ((length or 3) - 1)                  # a tuple: one bad value among good ones
            cases.append((model_name, field.name, ",".join([bad, *others])))
        if length > 1:
            cases.append((model_name, field.name, ",".join([good] * (length - 1))))   # one value too few
            cases.append((model_name, field.name, ",".join([good] * (length + 1))))   # one value too many
    return cases


CASES = [case for name in MODELS for case in bad_settings(name)]


@pytest.mark.parametrize("model_name", MODELS)
def test_every_numeric_setting_has_bounds(model_name):
    """The class of 'nonsense accepted' stays closed: a new numeric setting needs bounds (by name or metadata)."""
    unbounded = [field.name for field, item_type, _ in numeric_fields(model_name)
                 if setting_bounds(field) is None and item_type is int]
    assert not unbounded, f"{model_name}: declare bounds for {unbounded} (see mer_bench.model_config)"


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_preset_passes_its_own_validation(model_name, dataset):
    model_class = get_catalog().models[model_name].value
    build_config(model_class, info_for(dataset), {})
    build_config(model_class, info_for(dataset), model_class.smoke_settings)


@pytest.mark.parametrize("model_name,setting,text", CASES)
def test_a_bad_numeric_setting_is_one_line_naming_it(model_name, setting, text):
    model_class = get_catalog().models[model_name].value
    with pytest.raises(UserError) as error:
        build_config(model_class, info_for("synthetic"), parse_overrides(model_class, {setting: text}))
    message = str(error.value)
    assert f"'{setting}'" in message and "\n" not in message, message


def test_cases_cover_every_model_with_numeric_settings():
    assert {case[0] for case in CASES} == {name for name in MODELS if numeric_fields(name)}
    assert ("lf-dnn", "batch_size", "1") in CASES and ("lf-dnn", "hidden_dims", "1,1") in CASES


@pytest.mark.parametrize("setting,value,problem", [
    ("batch_size", 0, "must be at least 2"),
    ("batch_size", (1, 2), "must be a whole number"),
    ("hidden_dims", 1, "needs comma-separated values"),
    ("dropouts", [0.1, 0.1, float("nan"), 0.1], "each value must be a finite number"),
])
def test_programmatic_overrides_are_checked_too(setting, value, problem):
    """Overrides that skip --set parsing (a Python caller, a hand-made spec) meet the same checks in build_config."""
    model_class = get_catalog().model("lf-dnn").value
    with pytest.raises(UserError, match=problem):
        build_config(model_class, info_for("synthetic"), {setting: value})


@pytest.mark.parametrize("setting,message", [
    ("batch_size=0", "Setting 'batch_size' of model 'lf-dnn': must be at least 2 (got 0)."),
    ("hidden_dims=1", "Setting 'hidden_dims' of model 'lf-dnn': needs 3 comma-separated values, not 1 (got (1,))."),
    ("max_epochs=0", "Setting 'max_epochs' of model 'lf-dnn': must be at least 1 (got 0)."),
    ("patience=-1", "Setting 'patience' of model 'lf-dnn': must be at least 1 (got -1)."),
    ("learning_rate=nan", "must be a finite number"),
    ("weight_decay=-0.1", "Setting 'weight_decay' of model 'lf-dnn': must be at least 0 (got -0.1)."),
    ("dropouts=0.1,0.1,1.5,0.1", "each value must be at least 0 and below 1"),
])
def test_cli_refuses_nonsense_settings_before_any_work(setting, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "lf-dnn", "--dataset", "synthetic", "--seeds", "1", "--epochs", "1", "--no-probes",
              "--threads", "1", "--set", setting, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not tmp_path.exists() or not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("model_name,setting,message", [
    ("mult", {"dst_feature_dim_nheads": "30,7"}, r"heads \(7\) must divide"),
    ("cmc", {"heads": "3"}, "heads=3 must divide embed_dim=32"),
    ("cmc", {"label_momentum": "0.5"}, "label_momentum needs three values"),
    ("self-mm", {"text_pooling": "max"}, "'text_pooling' of model 'self-mm' must be 'cls' or 'mean'"),
])
def test_cross_setting_rules_run_in_build_config(model_name, setting, message):
    model_class = get_catalog().models[model_name].value
    with pytest.raises(UserError, match=message):
        build_config(model_class, info_for("sims"), parse_overrides(model_class, setting))
