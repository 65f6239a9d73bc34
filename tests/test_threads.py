"""The CPU thread budget follows what the process may use (affinity, cgroup quota, Slurm); OpenMP spins briefly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mer_bench import threads

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")


def run_python(code: str, env: dict[str, str] | None = None, cpus: set[int] | None = None) -> str:
    """stdout of `python -c code`, optionally pinned to `cpus` before it starts."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
    finished = subprocess.run([sys.executable, "-c", code], env=env, preexec_fn=pin, capture_output=True, text=True,
                              check=True)
    return finished.stdout.strip()


@needs_affinity
def test_budget_follows_a_restricted_affinity_mask():
    first = min(os.sched_getaffinity(0))
    code = "from mer_bench.threads import cpu_budget; import torch; print(cpu_budget())"
    assert run_python(code, cpus={first}) == "1"


def test_budget_takes_slurms_cpus_per_task(monkeypatch):
    monkeypatch.setattr(threads, "_affinity_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_cgroup_quota_cpus", lambda: None)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert threads.cpu_budget() == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "not-a-number")     # ignored: Slurm never writes that
    assert threads.cpu_budget() == 4


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_rounds_up_and_the_tightest_level_wins(tmp_path):
    membership = tmp_path / "self-cgroup"
    write(membership, "0::/jobs/job1\n")
    write(tmp_path / "root" / "jobs" / "job1" / "cpu.max", "150000 100000\n")    # 1.5 CPUs -> 2
    write(tmp_path / "root" / "jobs" / "cpu.max", "max 100000\n")                 # no quota at this level
    assert threads._cgroup_quota_cpus(tmp_path / "root", membership) == 2
    write(tmp_path / "root" / "cpu.max", "100000 100000\n")                       # 1 CPU for everything below
    assert threads._cgroup_quota_cpus(tmp_path / "root", membership) == 1


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    membership = tmp_path / "self-cgroup"
    write(membership, "4:cpu,cpuacct:/slurm/job7\n1:name=systemd:/\n")
    group = tmp_path / "root" / "cpu,cpuacct" / "slurm" / "job7"
    write(group / "cpu.cfs_quota_us", "300000\n")
    write(group / "cpu.cfs_period_us", "100000\n")
    assert threads._cgroup_quota_cpus(tmp_path / "root", membership) == 3
    write(group / "cpu.cfs_quota_us", "-1\n")                                       # v1's "no quota"
    assert threads._cgroup_quota_cpus(tmp_path / "root", membership) is None


def test_unreadable_cgroup_information_means_no_quota(tmp_path):
    assert threads._cgroup_quota_cpus(tmp_path, tmp_path / "missing") is None
    write(tmp_path / "self-cgroup", "0::/\n")
    write(tmp_path / "cpu.max", "garbage\n")
    assert threads._cgroup_quota_cpus(tmp_path, tmp_path / "self-cgroup") is None


def test_local_jobs_split_the_budget(monkeypatch):
    monkeypatch.setattr(threads, "cpu_budget", lambda: 8)
    assert [threads.share_of_budget(jobs) for jobs in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_openmp_threads_spin_briefly_unless_the_user_chose(monkeypatch):
    code = "import os, mer_bench, torch; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    env = {key: value for key, value in os.environ.items() if key not in threads.WAIT_VARIABLES}
    assert run_python(code, env=env) == f"{threads.SHORT_SPIN} None"
    assert run_python(code, env={**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "None ACTIVE"
    assert run_python(code, env={**env, "GOMP_SPINCOUNT": "5"}) == "5 None"


def test_a_run_uses_the_budget_as_torch_threads(tmp_path):
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "1"}
    subprocess.run([sys.executable, "-m", "mer_bench", "run", "mean", "--dataset", "synthetic", "--seeds", "1111",
                    "--no-probes", "--out", str(tmp_path)], env=env, check=True, capture_output=True)
    (result,) = tmp_path.rglob("*.json")
    assert json.loads(result.read_text())["environment"]["torch_threads"] == 1
