"""Support for the sweep tests (no tests here): a model whose behaviour the tests choose, installable as a plugin.

Sweep workers are separate processes (local workers are spawned, Slurm jobs start afresh), so a model registered by
hand inside the test process is invisible to them. `install_probe_plugin` copies this file, as the module
``mer_bench_sweep_probe``, into a folder with real entry-point metadata (tests/entry_points.py); a process whose
``PYTHONPATH`` holds that folder finds the model as it finds any installed plugin. So this file imports nothing from
the tests package at module level.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mer_bench.hookspecs import hookimpl
from mer_bench.model import FitContext, Model, Predictions

PLUGIN_NAME = "sweep-probe"

# Has0 Acc-2 the model reaches, by setting and seed parity: (valid even, valid odd, test).
# Setting 0 has the best single validation run, setting 1 the best validation mean over two seeds, setting 2 the best
# test score: a selection on validation means must choose 1.
QUALITY = {0: (0.95, 0.45, 0.60), 1: (0.75, 0.75, 0.55), 2: (0.60, 0.60, 0.90)}


class SweepProbeModel(Model):
    """Test-only: reaches chosen accuracies by reading labels, sleeps, or fails on demand."""

    name = PLUGIN_NAME
    summary = "Test-only model for sweeps: chosen accuracies, a delay, a planted failure"
    outputs = frozenset({"score"})
    text_modes = ("features", "bert")

    @dataclass
    class Config:
        setting: int = 0          # row of QUALITY: the validation and test accuracies it reaches
        delay: float = 0.0        # seconds fit() sleeps, so that an interrupted sweep has runs in flight
        fail_marker: str = ""     # fit() raises while this file exists

    def __init__(self, config, info):
        super().__init__(config, info)
        self.valid_ids: tuple[str, ...] = ()
        self.seed = 0

    def fit(self, train, valid, ctx: FitContext) -> None:
        if self.config.fail_marker and Path(self.config.fail_marker).exists():
            raise RuntimeError(f"planted failure ({self.config.fail_marker} exists)")
        time.sleep(self.config.delay)
        self.valid_ids, self.seed = tuple(valid.ids), ctx.seed

    def predict(self, split) -> Predictions:
        valid_even, valid_odd, test = QUALITY[self.config.setting]
        quality = (valid_even if self.seed % 2 == 0 else valid_odd) if tuple(split.ids) == self.valid_ids else test
        label = split.label.float()
        positive = label > 0 if self.info.style == "sims" else label >= 0
        right = torch.arange(len(label)) < round(quality * len(label))   # the first `quality` share is right
        says_positive = torch.where(right, positive, ~positive)
        return Predictions(score=torch.where(says_positive, 0.5, -0.5))


@hookimpl
def register_models(register):
    register(SweepProbeModel)


def install_probe_plugin(site: Path) -> dict[str, str]:
    """Install this module as plugin `PLUGIN_NAME` under `site`; returns the environment for processes to see it."""
    from tests.entry_points import cli_environment, write_plugin_distribution

    write_plugin_distribution(site, "mer-bench-sweep-probe", {"mer_bench_sweep_probe": Path(__file__).read_text()},
                              {PLUGIN_NAME: "mer_bench_sweep_probe"})
    return cli_environment(site)


def write_grid(folder: Path, body: str) -> Path:
    """`folder`/grid.toml holding `body` (indented as a test writes it)."""
    path = Path(folder) / "grid.toml"
    path.write_text(textwrap.dedent(body))
    return path


def mer_bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mer_bench", *args]


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(mer_bench_command(*args), env=env, capture_output=True, text=True, timeout=timeout)


def files_under(folder: Path) -> set[Path]:
    """Every file below `folder`, hidden ones included: locks, failure records and temporary files show up."""
    return {path for path in Path(folder).rglob("*") if path.is_file()}
