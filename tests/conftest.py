"""Shared fixtures: small synthetic data, a tiny random BERT, a plugin registered for one test only."""

from __future__ import annotations

import os

import pytest
import torch

from mer_bench.bert import save_tiny_bert
from mer_bench.data.builtin import synthetic_spec
from mer_bench.plugins import register_plugin, unregister_plugin

# Each xdist worker gets one thread: two workers on two cores must not oversubscribe them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

TINY_SIZES = (64, 32, 48)


@pytest.fixture(scope="session")
def tiny_data():
    """A small synthetic dataset (64/32/48 samples, default shapes), built once per test session."""
    return synthetic_spec(sizes=TINY_SIZES, name="synthetic").generate()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A tiny randomly initialised BERT saved to disk, as a user's local BERT folder would be."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def registered_plugin():
    """Register plugin objects for the duration of one test: `registered_plugin(obj, name)`."""
    names = []

    def register(plugin, name):
        register_plugin(plugin, name)
        names.append(name)
        return plugin

    yield register
    for name in names:
        unregister_plugin(name)
