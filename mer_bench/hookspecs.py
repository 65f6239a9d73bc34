"""The hooks a mer-bench plugin can implement. These docstrings are the plugin author's reference.

A plugin is a module (or any object) with functions decorated by `mer_bench.hookimpl`, registered under the entry-point
group ``mer_bench`` in its distribution's ``pyproject.toml``::

    [project.entry-points.mer_bench]
    my-model = "my_package.plugin"

Hooks use callback registration: mer-bench calls the hook with a ``register`` function and the plugin calls it once per
thing it provides. mer-bench records which plugin (and which distribution and version) registered each thing.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mer_bench")
hookimpl = pluggy.HookimplMarker("mer_bench")


@hookspec
def register_models(register):
    """Register model classes.

    Call ``register(ModelClass)`` once per model. ``ModelClass`` subclasses `mer_bench.model.Model` and sets the class
    attributes ``name`` (the name users type, lower-case with dashes, unique across all plugins), ``Config`` (a
    dataclass whose fields, each with a default and a comment, are the settable hyperparameters), ``outputs`` (a subset
    of ``{"score", "probs"}``) and ``summary`` (one line for ``mer-bench models list``).

    A name registered twice, by one plugin or by two, is an error that names both registrants.
    """


@hookspec
def register_datasets(register):
    """Register datasets.

    Call ``register(spec)`` once per dataset, where ``spec`` is a `mer_bench.data.DatasetSpec`: its name, label style
    (``"mosi"`` labels in [-3, 3] or ``"sims"`` labels in [-1, 1]), expected feature dimensions and sequence lengths,
    expected split sizes, whether the files carry unimodal labels, the text encoder for BERT mode, where the files live
    inside a data folder and the published SHA-256 of the file, if any. The harness reads and validates the file.
    """
