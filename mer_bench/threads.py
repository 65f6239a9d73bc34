"""How many CPU threads mer-bench may use, and how they wait.

The budget is the number of CPUs this process may actually run on, not the machine's core count:
- the affinity mask (`taskset`, Slurm's CPU binding, `docker --cpuset-cpus`);
- the cgroup CPU quota (`docker --cpus`, Kubernetes limits, Slurm's cgroup plugin), v2 `cpu.max` or v1
  `cpu.cfs_quota_us / cpu.cfs_period_us`, rounded up;
- `SLURM_CPUS_PER_TASK` where Slurm sets it (a job may be bound to more CPUs than it asked for).
torch's intra-op pool, the CMC block attention's workers (which switch torch to one thread while they run) and a
sweep's local jobs (which split the budget) all draw from this one number, so they never add up to more threads than
CPUs.

Waiting: torch's CPU build runs its parallel regions on GNU OpenMP, whose idle threads spin for 300,000 rounds
before they sleep. On a quiet machine that saves the wake-up between back-to-back regions; on a busy one (a shared
lab server, a Slurm node with other jobs) a spinning thread burns the time slice that the thread it waits for needs.
Measured with benchmarks/bench_contention.py (one CMC synthetic seed, 2 cores, quiet / beside two busy loops, wall
seconds, one run each): OpenMP's default 41 / 218 (CPU time x2.8 under load); sleeping at once
(OMP_WAIT_POLICY=PASSIVE) 78 / 108 (quiet runs 1.9x slower: every small operation waits for a thread to wake);
GOMP_SPINCOUNT=10000 51 / 175 (CPU x1.7); GOMP_SPINCOUNT=1000, the default, 53 / 101 (CPU x1.14). A brief spin
catches back-to-back parallel regions on a quiet machine and gives the core away soon on a busy one. Users can still
choose: OMP_WAIT_POLICY=PASSIVE, a GOMP_SPINCOUNT of their own, or --threads 1.
OpenMP reads the setting once, when torch's library loads, so `prefer_short_spinning` runs before anything imports
torch; a choice the user made with OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept. Waiting has no effect on results: the
same thread count gives the same numbers bit for bit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")   # the user's own choice of how OpenMP threads wait
SHORT_SPIN = "1000"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def prefer_short_spinning() -> None:
    """Idle OpenMP threads spin briefly, then sleep, unless the user chose otherwise (call before importing torch)."""
    if not any(variable in os.environ for variable in WAIT_VARIABLES):
        os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN


def cpu_budget() -> int:
    """CPUs this process may use: the smallest of its affinity mask, its cgroup quota and Slurm's CPUs per task."""
    limits = [_affinity_cpus(), _cgroup_quota_cpus(), _slurm_cpus()]
    return max(1, min(limit for limit in limits if limit is not None))


def share_of_budget(jobs: int) -> int:
    """Threads for each of `jobs` processes that split the budget evenly (at least one each)."""
    return max(1, cpu_budget() // max(1, jobs))


def apply_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count to `threads`, or to the CPU budget; returns the count set."""
    import torch

    count = threads if threads is not None else cpu_budget()
    torch.set_num_threads(count)
    return count


def _affinity_cpus() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _slurm_cpus() -> int | None:
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _cgroup_quota_cpus(root: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """CPUs granted by the cgroup CPU quotas of this process and its parent groups, rounded up; None if unlimited.

    cgroup v2 ('0::/path' in /proc/self/cgroup) keeps "QUOTA PERIOD" or "max PERIOD" in cpu.max; v1 keeps them in
    cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us under the cpu controller's hierarchy."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for controllers, path in (line.split(":", 2)[1:] for line in lines if line.count(":") >= 2):
        if controllers == "":
            quotas += [_cpu_max(folder) for folder in _up_to(root / path.lstrip("/"), root)]
        elif "cpu" in controllers.split(","):
            hierarchy = root / controllers if (root / controllers).is_dir() else root / "cpu"
            quotas += [_cfs_quota(folder) for folder in _up_to(hierarchy / path.lstrip("/"), hierarchy)]
    granted = [quota for quota in quotas if quota is not None]
    return min(granted) if granted else None


def _up_to(folder: Path, root: Path):
    """`folder`, its parents, ..., `root` (quotas of enclosing groups apply too)."""
    while True:
        yield folder
        if folder == root or folder == folder.parent:
            return
        folder = folder.parent


def _cpu_max(folder: Path) -> int | None:
    try:
        parts = (folder / "cpu.max").read_text().split()
    except OSError:
        return None
    return _cpus(parts[0], parts[1]) if len(parts) == 2 and parts[0] != "max" else None


def _cfs_quota(folder: Path) -> int | None:
    try:
        return _cpus((folder / "cpu.cfs_quota_us").read_text(), (folder / "cpu.cfs_period_us").read_text())
    except OSError:
        return None


def _cpus(quota_text: str, period_text: str) -> int | None:
    """ceil(quota / period), or None when either is not a positive integer (no quota)."""
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None
