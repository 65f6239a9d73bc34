"""Loading SIMS-v2-shaped data from the MMSA pickle vs from the prepared cache: time and peak memory.

    python benchmarks/bench_data_loading.py [--repeats 5] [--sizes 2722 647 1034]

Builds the synthetic dataset with CH-SIMS v2(s)'s shapes (2722/647/1034 samples, padded lengths 50/925/232, feature
sizes 768/25/177, about 1.7 GB) as a pickle in a temporary folder, prepares it, then loads it in one fresh process per
variant, several times each, and reports the median. Each process also reports its peak resident memory above what
the imports alone take (VmHWM), while loading and after one more load followed by a pass over every value: the cache
maps its arrays lazily, so "load" alone would flatter it, and the full pass is what a first training epoch pays.
Mapped pages that were read count as resident, but they are file-backed page cache the system can drop, unlike the
pickle's private copies.

Both variants read files the system has just written, so both come from the page cache; a cold disk slows the pickle
(which reads everything) more than the cache (which reads what is used).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mer_bench.data.builtin import STANDARD_DATASETS
from mer_bench.data.loading import load_dataset, prepare_dataset
from mer_bench.data.mmsa import write_pickle
from mer_bench.data.split import SPLITS, TENSOR_FIELDS
from mer_bench.data.synthetic import generate_raw

SPEC = next(spec for spec in STANDARD_DATASETS if spec.name == "sims-v2")


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec, while ru_maxrss keeps the parent's peak
    across exec on Linux, so VmHWM is read where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # KiB on Linux


def touch_every_value(data) -> float:
    """Sum every tensor once (in its own dtype, so no converted copy), reading every page of a mapped array."""
    return float(sum(float(getattr(data.split(name), field).sum()) for name in SPLITS for field in TENSOR_FIELDS
                     if getattr(data.split(name), field) is not None))


def measure(variant: str, path: Path, repeats: int) -> dict:
    """Runs in the child process: `repeats` loads, then one load followed by a full pass."""
    baseline = peak_rss_mib()
    use_cache = variant == "cache"
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        data = load_dataset(SPEC, data_file=path, use_cache=use_cache)
        times.append(time.perf_counter() - started)
        del data
        gc.collect()
    peak_loading = peak_rss_mib() - baseline
    started = time.perf_counter()
    touch_every_value(load_dataset(SPEC, data_file=path, use_cache=use_cache))
    full = time.perf_counter() - started
    return {"variant": variant, "times": times, "median": statistics.median(times), "load_and_read_all": full,
            "peak_mib_loading": peak_loading, "peak_mib_after_reading_all": peak_rss_mib() - baseline}


def run_variant(variant: str, path: Path, repeats: int, cache_dir: Path) -> dict:
    environment = dict(os.environ, MER_BENCH_CACHE=str(cache_dir), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, __file__, "--child", variant, str(path), "--repeats", str(repeats)],
                          env=environment, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(folder: Path, sizes: tuple[int, int, int]) -> tuple[Path, float, float]:
    path = folder / "SIMSv2" / "Processed" / "sims_unaligned.pkl"
    path.parent.mkdir(parents=True)
    write_pickle(generate_raw("sims-v2", sizes, seed=0), path)
    started = time.perf_counter()
    entry = prepare_dataset(SPEC, path, root=folder / "cache").entry
    prepare_seconds = time.perf_counter() - started
    return path, prepare_seconds, entry.total_size() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs=3, default=list(SPEC.split_sizes), metavar=("TRAIN", "VALID", "TEST"))
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.repeats)))
        return
    with tempfile.TemporaryDirectory(prefix="mer-bench-bench-") as folder:
        path, prepare_seconds, cache_mib = build(Path(folder), tuple(args.sizes))
        print(f"SIMS-v2-shaped synthetic data, sizes {'/'.join(map(str, args.sizes))}, lengths 50/925/232, "
              f"dims 768/25/177: pickle {path.stat().st_size / 2**20:.0f} MiB, prepared cache {cache_mib:.0f} MiB "
              f"(prepare took {prepare_seconds:.1f} s)")
        results = {variant: run_variant(variant, path, args.repeats, Path(folder) / "cache")
                   for variant in ("pickle", "cache")}
    for result in results.values():
        times = ", ".join(f"{t:.3f}" for t in result["times"])
        print(f"{result['variant']:>6}: load median {result['median']:.3f} s (runs: {times}); load + read every "
              f"value {result['load_and_read_all']:.3f} s; peak RSS above imports: {result['peak_mib_loading']:.0f} "
              f"MiB while loading, {result['peak_mib_after_reading_all']:.0f} MiB after reading every value")
    pickle_result, cache_result = results["pickle"], results["cache"]
    print(f"cache vs pickle: load {pickle_result['median'] / cache_result['median']:.1f}x faster; load + read every "
          f"value {pickle_result['load_and_read_all'] / cache_result['load_and_read_all']:.1f}x faster; peak memory "
          f"while loading {cache_result['peak_mib_loading']:.0f} vs {pickle_result['peak_mib_loading']:.0f} MiB")


if __name__ == "__main__":
    main()
