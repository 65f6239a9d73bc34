"""Killing a run mid-way (SIGINT or SIGTERM) leaves no partial result file, and the next run completes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.entry_points import cli_environment, write_plugin_distribution

SLOW_PLUGIN = '''
import dataclasses, pathlib, time
import torch
from mer_bench.hookspecs import hookimpl
from mer_bench.model import Model, Predictions

@dataclasses.dataclass
class SlowConfig:
    seconds: float = 0.0  # how long fit takes
    marker: str = ""      # file created when fit starts

class Slow(Model):
    name = "slow-test"
    Config = SlowConfig

    def fit(self, train, valid, ctx):
        pathlib.Path(self.config.marker).touch()
        (ctx.run_dir / "checkpoint.pt").write_text("scratch")
        time.sleep(self.config.seconds)

    def predict(self, split):
        return Predictions(score=torch.zeros(len(split)))

@hookimpl
def register_models(register):
    register(Slow)
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_killed_run_leaves_no_partial_file(signum, tmp_path):
    site = write_plugin_distribution(tmp_path / "site", "mer-bench-slow", {"slow_plugin": SLOW_PLUGIN},
                                     {"slow": "slow_plugin"})
    out, marker = tmp_path / "out", tmp_path / "fit-started"
    args = [sys.executable, "-m", "mer_bench", "run", "slow-test", "--dataset", "synthetic", "--seeds", "1111,1112",
            "--out", str(out), "--no-probes", "--set", f"marker={marker}"]
    process = subprocess.Popen([*args, "--set", "seconds=60"], env=cli_environment(site),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(marker, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=180)
    assert process.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert not [path for path in out.rglob("*") if path.is_file()], "a partial file was left behind"

    finished = subprocess.run([*args, "--set", "seconds=0"], env=cli_environment(site), capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert len(list(out.rglob("*.json"))) == 2


def _wait_for(marker, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "fit never started"
        time.sleep(0.1)
