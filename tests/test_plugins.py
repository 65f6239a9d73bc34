"""The plugin system: hooks documented and tested, per-test registration, broken and misspelled plugins."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import warnings

import pytest

from mer_bench import hookspecs
from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import PluginError
from mer_bench.hookspecs import hookimpl
from mer_bench.model import Model, Predictions
from mer_bench.plugins import PluginWarning, get_catalog
from tests.entry_points import run_cli, write_plugin_distribution

HOOK_NAMES = sorted(name for name, value in vars(hookspecs).items()
                    if callable(value) and hasattr(value, "mer_bench_spec"))


class ConstantModel(Model):
    name = "constant-test"
    summary = "predicts 0.5 everywhere"

    def fit(self, train, valid, ctx):
        pass

    def predict(self, split):
        import torch
        return Predictions(score=torch.full((len(split),), 0.5))


class ModelPlugin:
    @hookimpl
    def register_models(self, register):
        register(ConstantModel)


def test_every_hook_is_documented_and_tested():
    assert HOOK_NAMES == ["register_datasets", "register_models"]
    module = sys.modules[__name__]
    for name in HOOK_NAMES:
        assert inspect.getdoc(getattr(hookspecs, name)), f"hook {name} has no docstring"
        assert hasattr(module, f"test_hook_{name}"), f"hook {name} has no test_hook_{name}"


def test_hook_register_models(registered_plugin):
    assert "constant-test" not in get_catalog().models
    registered_plugin(ModelPlugin(), "test-models")
    entry = get_catalog().model("constant-test")
    assert entry.value is ConstantModel and entry.plugin == "test-models"


def test_hook_register_datasets(registered_plugin):
    class DatasetPlugin:
        @hookimpl
        def register_datasets(self, register):
            register(dataclasses.replace(synthetic_spec(sizes=(8, 4, 4)), name="tiny-test-set"))

    registered_plugin(DatasetPlugin(), "test-datasets")
    entry = get_catalog().dataset("tiny-test-set")
    assert entry.plugin == "test-datasets"
    assert len(entry.value.generate().test) == 4


def test_plugin_registered_in_a_test_is_gone_afterwards():
    assert "constant-test" not in get_catalog().models


def test_misspelled_hook_fails_loudly(registered_plugin):
    class Misspelled:
        @hookimpl
        def register_model(self, register):  # missing the final "s"
            register(ConstantModel)

    with pytest.raises(PluginError, match="unknown hook 'register_model'.*register_models"):
        registered_plugin(Misspelled(), "misspelled")


def test_plugin_that_raises_is_skipped_with_a_warning(registered_plugin):
    class Broken:
        @hookimpl
        def register_models(self, register):
            raise RuntimeError("boom")

    registered_plugin(Broken(), "broken-plugin")
    with pytest.warns(PluginWarning, match="broken-plugin"):
        catalog = get_catalog()
    assert "mean" in catalog.models   # everything else still works


def test_name_registered_twice_names_both_plugins(registered_plugin):
    registered_plugin(ModelPlugin(), "first")
    registered_plugin(ModelPlugin(), "second")
    with pytest.raises(PluginError, match="'first'.*'second'"):
        get_catalog()


def test_builtin_models_and_datasets_come_through_entry_points():
    catalog = get_catalog()
    assert catalog.model("mean").distribution == "mer-bench-baselines"
    assert catalog.dataset("sims-v2").distribution == "mer-bench"


EXTERNAL_PLUGIN = '''
import torch
from mer_bench.hookspecs import hookimpl
from mer_bench.model import Model, Predictions

class Zero(Model):
    name = "zero-external"
    summary = "always predicts 0"

    def fit(self, train, valid, ctx):
        pass

    def predict(self, split):
        return Predictions(score=torch.zeros(len(split)))

@hookimpl
def register_models(register):
    register(Zero)
'''


def test_external_plugin_is_listed_and_runnable(tmp_path):
    site = write_plugin_distribution(tmp_path / "site", "mer-bench-zero", {"zero_plugin": EXTERNAL_PLUGIN},
                                     {"zero": "zero_plugin"}, version="1.2.3")
    listed = run_cli(["models", "list", "--json"], site)
    assert listed.returncode == 0, listed.stderr
    row = next(row for row in json.loads(listed.stdout) if row["name"] == "zero-external")
    assert (row["plugin"], row["distribution"], row["version"]) == ("zero", "mer-bench-zero", "1.2.3")
    ran = run_cli(["run", "zero-external", "--dataset", "synthetic", "--seeds", "1111", "--out", str(tmp_path / "out"),
                   "--no-probes"], site)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(next((tmp_path / "out" / "synthetic" / "zero-external").glob("*.json")).read_text())
    assert result["environment"]["plugin"] == {"name": "zero", "distribution": "mer-bench-zero", "version": "1.2.3"}


def test_broken_external_plugin_warns_and_the_rest_works(tmp_path):
    site = write_plugin_distribution(tmp_path / "site", "mer-bench-broken", {"broken_plugin": "raise ImportError('x')"},
                                     {"broken": "broken_plugin"})
    listed = run_cli(["models", "list", "--json"], site)
    assert listed.returncode == 0
    assert "plugin 'broken' failed to load" in listed.stderr
    assert "mean" in [row["name"] for row in json.loads(listed.stdout)]


def test_misspelled_external_hook_is_a_one_line_error(tmp_path):
    source = "from mer_bench.hookspecs import hookimpl\n\n@hookimpl\ndef register_modles(register):\n    pass\n"
    site = write_plugin_distribution(tmp_path / "site", "mer-bench-typo", {"typo_plugin": source},
                                     {"typo": "typo_plugin"})
    listed = run_cli(["models", "list"], site)
    assert listed.returncode == 2
    assert "Plugin 'typo' implements unknown hook 'register_modles'. Did you mean 'register_models'?" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_no_warnings_from_a_clean_install():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_catalog()
