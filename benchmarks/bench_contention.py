"""A synthetic seed on a quiet machine against the same seed beside N CPU-bound competitors: wall and CPU seconds.

    python benchmarks/bench_contention.py                          # cmc, cmc-gt, lf-dnn; 2 competitors
    python benchmarks/bench_contention.py --competitors 4 --models cmc
    python benchmarks/bench_contention.py --compare cmc            # cmc also as OpenMP waits by default and passively

Each case runs `mer-bench run MODEL --dataset synthetic --seeds 1111 --no-probes` as a user would, with the default
thread policy (mer_bench/threads.py), once alone and once while N busy-loop processes compete for the CPUs. Targets on
a 2-core machine with 2 competitors: wall time at most 2.5x the quiet run's, CPU time within 1.3x of it (a fair share
of the CPU stretches wall time; only threads that spin or wait on each other inflate CPU time).

`--compare MODELS` repeats those models' cases with the two other ways OpenMP threads can wait, so one run of this
script shows the choice: "libgomp" (GOMP_SPINCOUNT=300000, OpenMP's own default and mer-bench's before it chose)
and "passive" (OMP_WAIT_POLICY=PASSIVE, sleep at once); "short-spin" is mer-bench's default (GOMP_SPINCOUNT=1000).
The load average is printed before each quiet run: if it is far from 0, the quiet figures are not quiet.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BUSY_LOOP = "while True: pass"
WAITING = {"short-spin": {}, "libgomp": {"GOMP_SPINCOUNT": "300000"}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


@dataclass(frozen=True)
class Timing:
    wall: float    # seconds
    cpu: float     # user + system seconds of the run's process tree


@dataclass(frozen=True)
class Case:
    model: str
    policy: str    # how OpenMP threads wait: a key of WAITING
    quiet: Timing
    loaded: Timing


def timed_run(model: str, out_dir: Path, env: dict[str, str], threads: int | None) -> Timing:
    """One `mer-bench run`, its wall time and the CPU time of its process tree."""
    command = [sys.executable, "-m", "mer_bench", "run", model, "--dataset", "synthetic", "--seeds", "1111",
               "--no-probes", "--force", "--out", str(out_dir)]
    if threads is not None:
        command += ["--threads", str(threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{model} failed:\n{finished.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timing(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def start_competitors(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def measure(model: str, policy: str, competitors: int, threads: int | None, folder: Path) -> Case:
    env = dict(os.environ)
    for variable in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(variable, None)              # "short-spin": mer-bench's own default applies
    env.update(WAITING[policy])
    print(f"{model} ({policy}): load average {os.getloadavg()[0]:.2f} before the quiet run", flush=True)
    quiet = timed_run(model, folder / f"{model}-{policy}-quiet", env, threads)
    busy = start_competitors(competitors)
    try:
        time.sleep(0.5)                       # let the competitors reach full speed
        loaded = timed_run(model, folder / f"{model}-{policy}-loaded", env, threads)
    finally:
        stop(busy)
    return Case(model, policy, quiet, loaded)


def print_table(cases: list[Case], competitors: int) -> None:
    header = (f"{'model':<8} {'waiting':<10} {'quiet wall':>10} {'quiet cpu':>9} {'loaded wall':>11} "
              f"{'loaded cpu':>10} {'wall x':>7} {'cpu x':>6}")
    print(f"\n{competitors} busy-loop competitor(s) on {os.cpu_count()} CPU(s); seconds for one synthetic seed")
    print(header)
    print("-" * len(header))
    for case in cases:
        print(f"{case.model:<8} {case.policy:<10} {case.quiet.wall:>10.1f} {case.quiet.cpu:>9.1f} "
              f"{case.loaded.wall:>11.1f} {case.loaded.cpu:>10.1f} {case.loaded.wall / case.quiet.wall:>7.2f} "
              f"{case.loaded.cpu / case.quiet.cpu:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cmc,cmc-gt,lf-dnn", help="comma-separated model names")
    parser.add_argument("--competitors", type=int, default=2, help="busy-loop processes during the loaded run")
    parser.add_argument("--threads", type=int, default=None, help="--threads for every run (default: the policy's)")
    parser.add_argument("--compare", default="", metavar="MODELS",
                        help="comma-separated models to measure also with libgomp's default and passive waiting")
    args = parser.parse_args()
    compared = set(filter(None, args.compare.split(",")))
    with tempfile.TemporaryDirectory(prefix="mer-bench-contention-") as scratch:
        cases = [measure(model, policy, args.competitors, args.threads, Path(scratch))
                 for model in args.models.split(",")
                 for policy in WAITING if policy == "short-spin" or model in compared]
    print_table(cases, args.competitors)


if __name__ == "__main__":
    main()
