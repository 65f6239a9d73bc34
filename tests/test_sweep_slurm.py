"""A sweep through `--executor slurm` against a real single-node Slurm (.ci/setup-slurm.sh starts one)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mer_bench.cli import main
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.sweep.grid import load_grid
from tests import test_sweep_support as support

pytestmark = pytest.mark.slurm


def slurm_unavailable() -> str | None:
    """Why Slurm cannot be used here, or None."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "Slurm is not installed here (no sbatch/sinfo on PATH; .ci/setup-slurm.sh installs and starts one)"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo does not answer (is slurmctld running? .ci/setup-slurm.sh starts it)"
    if answer.returncode != 0:
        return f"sinfo fails ({answer.stderr.strip()}); .ci/setup-slurm.sh starts a one-node cluster"
    if not any(state.startswith(("idle", "mix", "alloc")) for state in answer.stdout.split()):
        return f"no usable Slurm node (sinfo says {answer.stdout.split()})"
    return None


def test_a_grid_runs_as_a_slurm_job_array_into_the_same_result_files(tmp_path, capsys):
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111, 1112, 1113]
        probes = false
        [models.mean]
    """)
    env = support.install_probe_plugin(tmp_path / "site")   # the environment tests use; mean is installed anyway
    swept = support.run_cli(env, "sweep", "run", str(grid_file), "--executor", "slurm", "--cpus", "1", "--time", "5",
                            "--runs-per-job", "2", "--slurm-folder", str(tmp_path / "slurm"), timeout=240)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "Submitted job array" in swept.stderr and "3 run(s) done" in swept.stdout

    specs = load_grid(grid_file, get_catalog()).specs
    expected = {spec.result_path(tmp_path / "results") for spec in specs}
    assert support.files_under(tmp_path / "results") == expected   # no lock, failure or temporary file left
    for spec in specs:
        result = read_result(spec.result_path(tmp_path / "results"))
        assert result.spec == spec and result.environment   # the same RunResult as `mer-bench run`
    # Two array tasks (2 + 1 runs), each with submitit's log and result pickle in the shared folder.
    assert len(list((tmp_path / "slurm").glob("*_result.pkl"))) == 2

    with pytest.raises(SystemExit) as exited:   # resuming a finished sweep submits nothing
        main(["sweep", "run", str(grid_file), "--executor", "slurm"])
    assert exited.value.code == 0 and "Nothing to run." in capsys.readouterr().err
