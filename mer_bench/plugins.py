"""The plugin manager: loads the ``mer_bench`` entry points and builds the catalog of models and datasets.

Two failure modes are handled differently on purpose:
- a plugin that cannot be imported, or whose hook raises, is a third party's bug: we warn, name the plugin and keep
  working with everything else;
- a plugin that implements a hook name we do not have (``register_model`` for ``register_models``) would otherwise be
  silently ignored forever, so it is a `PluginError` that names the plugin and suggests the right hook.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import warnings
import dataclasses
from dataclasses import dataclass
from typing import Any

import pluggy

from mer_bench import hookspecs
from mer_bench.errors import PluginError, unknown_name

ENTRY_POINT_GROUP = "mer_bench"

_plugin_manager: pluggy.PluginManager | None = None
_distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution name, version)


class PluginWarning(UserWarning):
    """A third-party plugin failed and was skipped."""


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed entry-point plugin loaded once."""
    global _plugin_manager
    if _plugin_manager is None:
        manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        manager.add_hookspecs(hookspecs)
        _load_entry_points(manager)
        _plugin_manager = manager
    return _plugin_manager


def register_plugin(plugin: object, name: str) -> None:
    """Register a plugin object by hand (tests, notebooks). Unknown hook names raise `PluginError`."""
    manager = get_plugin_manager()
    check_hook_names(plugin, name)
    manager.register(plugin, name=name)


def unregister_plugin(name: str) -> None:
    manager = get_plugin_manager()
    plugin = manager.get_plugin(name)
    if plugin is not None:
        manager.unregister(plugin)


def check_hook_names(plugin: object, plugin_name: str) -> None:
    """Raise `PluginError` if the plugin marks a function as a hook implementation that no hookspec defines."""
    known = sorted(name for name in dir(hookspecs) if name.startswith("register_"))
    for attribute in dir(plugin):
        function = getattr(plugin, attribute, None)
        if not callable(function) or not hasattr(function, "mer_bench_impl"):
            continue
        if attribute not in known:
            close = difflib.get_close_matches(attribute, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PluginError(f"Plugin '{plugin_name}' implements unknown hook '{attribute}'.{hint}")


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party plugin must not take the harness down
            warnings.warn(f"mer-bench plugin '{entry_point.name}' failed to load and was skipped: {error!r}",
                          PluginWarning, stacklevel=2)
            continue
        check_hook_names(plugin, entry_point.name)
        manager.register(plugin, name=entry_point.name)
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)


def plugin_distribution(plugin_name: str) -> tuple[str, str]:
    """(distribution, version) a plugin was installed from; ("unregistered", "") for plugins registered by hand."""
    return _distributions.get(plugin_name, ("unregistered", ""))


@dataclass(frozen=True)
class Entry:
    """One registered model class or dataset spec, with where it came from."""

    name: str
    value: Any
    plugin: str
    distribution: str
    version: str


class Catalog:
    """Every model and dataset the installed plugins register, by name."""

    def __init__(self, models: dict[str, Entry], datasets: dict[str, Entry]):
        self.models, self.datasets = models, datasets

    def model(self, name: str) -> Entry:
        if name not in self.models:
            raise unknown_name("model", name, self.models)
        return self.models[name]

    def dataset(self, name: str) -> Entry:
        if name not in self.datasets and name.startswith("synthetic+") and "synthetic" in self.datasets:
            return self._synthetic_member(name)
        if name not in self.datasets:
            raise unknown_name("dataset", name, self.datasets)
        return self.datasets[name]

    def _synthetic_member(self, name: str) -> Entry:
        """A member of the synthetic family named by its knobs (mer_bench.data.synthetic_family), built on demand since
        the family has no end; credited to the plugin that registered 'synthetic'. Bad knobs: one-line UserError."""
        from mer_bench.data.builtin import member_spec
        from mer_bench.data.synthetic_family import parse

        return dataclasses.replace(self.datasets["synthetic"], name=name, value=member_spec(parse(name)))


def get_catalog() -> Catalog:
    """Ask every plugin to register its models and datasets. Cheap: hooks only hand over classes and specs."""
    manager = get_plugin_manager()
    models = _collect(manager, "register_models")
    datasets = _collect(manager, "register_datasets")
    return Catalog(models, datasets)


def _collect(manager: pluggy.PluginManager, hook_name: str) -> dict[str, Entry]:
    collected: dict[str, Entry] = {}
    for implementation in getattr(manager.hook, hook_name).get_hookimpls():
        plugin_name = implementation.plugin_name
        found: list[Any] = []
        try:
            implementation.function(register=found.append)
        except Exception as error:  # a third party's bug: report it and keep the rest of the catalog
            warnings.warn(f"mer-bench plugin '{plugin_name}' raised in {hook_name} and was skipped: {error!r}",
                          PluginWarning, stacklevel=2)
            continue
        distribution, version = plugin_distribution(plugin_name)
        for value in found:
            _add_entry(collected, Entry(value.name, value, plugin_name, distribution, version), hook_name)
    return collected


def _add_entry(collected: dict[str, Entry], entry: Entry, hook_name: str) -> None:
    if not isinstance(entry.name, str) or not entry.name:
        raise PluginError(f"Plugin '{entry.plugin}' registered something without a name in {hook_name}.")
    if entry.name in collected:
        first = collected[entry.name].plugin
        raise PluginError(f"'{entry.name}' is registered twice in {hook_name}: by plugin '{first}' and by '{entry.plugin}'.")
    collected[entry.name] = entry
