"""Speed-up of a local sweep with 2 jobs over 1 job, on a 16-run grid on the synthetic dataset.

    python benchmarks/bench_sweep.py                      # lf-dnn, 3 epochs, 16 runs
    python benchmarks/bench_sweep.py --model tfn --epochs 2

Both sweeps share the machine the way `mer-bench sweep run --jobs N` does: N worker processes, each with
cores // N torch threads, so 1 job gets every core as threads and 2 jobs get half each. The times include starting
the workers and reading the dataset, as a user's sweep pays them. The target is a ratio of at least 1.5 on two cores:
small models use threads poorly, so processes are the better use of the cores.

The load average is printed before and after: other work on the machine makes the ratio noisy; rerun when it is quiet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

from mer_bench.plugins import get_catalog
from mer_bench.sweep.grid import load_grid
from mer_bench.sweep.local import LocalLayout, run_local
from mer_bench.threads import cpu_budget
from mer_bench.sweep.worker import WorkerSettings


def grid_text(model: str, epochs: int) -> str:
    # 2 x 2 configurations x 4 seeds = 16 runs; the settings exist in lf-dnn's config (post_fusion_dim, learning_rate).
    return textwrap.dedent(f"""
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111, 1112, 1113, 1114]
        epochs = {epochs}
        probes = false
        [models.{model}]
        grid = {{ post_fusion_dim = [16, 32], learning_rate = [0.005, 0.001] }}
    """)


def time_sweep(folder: Path, model: str, epochs: int, jobs: int) -> tuple[float, int]:
    grid_file = folder / "grid.toml"
    grid_file.write_text(grid_text(model, epochs))
    grid = load_grid(grid_file, get_catalog())
    layout = LocalLayout.fit(jobs, device="cpu")
    started = time.perf_counter()
    outcomes = run_local(list(grid.specs), WorkerSettings(out_dir=grid.results, device="cpu", probes=False), layout)
    seconds = time.perf_counter() - started
    failed = [spec.run_id for spec, outcome in outcomes.items() if outcome != "done"]
    if failed:
        raise SystemExit(f"runs did not finish: {failed} (see the .failed.json records under {grid.results})")
    return seconds, len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lf-dnn", help="a model with post_fusion_dim and learning_rate settings")
    parser.add_argument("--epochs", type=int, default=3, help="epoch budget per run")
    args = parser.parse_args()
    print(f"{cpu_budget()} CPU(s) for this process; load average before: {os.getloadavg()[0]:.2f}")
    times = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
            seconds, runs = time_sweep(Path(folder), args.model, args.epochs, jobs)
        layout = LocalLayout.fit(jobs, device="cpu")
        times[jobs] = seconds
        print(f"{jobs} job(s) x {layout.threads} thread(s): {runs} runs of {args.model} ({args.epochs} epochs) in "
              f"{seconds:.1f} s ({seconds / runs:.2f} s per run)")
    ratio = times[1] / times[2]
    print(f"speed-up of 2 jobs over 1: {ratio:.2f}x (target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
