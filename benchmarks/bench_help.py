"""How long `mer-bench --help` and every subcommand's `--help` take, as a user starts them (a new process each).

    python benchmarks/bench_help.py [--repeat 5]

Prints, per command, the best and the median wall time of `mer-bench ... --help` over the repeats, and the slowest
command's median. The target is under 0.5 s on 2 cores. Before the command modules kept torch, sklearn and the model
plugins out of their imports, `mer-bench --help` took about 2.8 s (every command loaded torch).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def command_paths() -> list[tuple[str, ...]]:
    """() for the root, then every group and command below it, as argument tuples."""
    import click

    from mer_bench.cli import cli

    paths: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli, ())
    return paths


def time_help(path: tuple[str, ...], repeat: int) -> list[float]:
    executable = shutil.which("mer-bench")
    command = [executable] if executable else [sys.executable, "-m", "mer_bench"]
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*command, *path, "--help"], check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    medians = {}
    for path in command_paths():
        seconds = time_help(path, repeat)
        medians[path] = statistics.median(seconds)
        print(f"mer-bench {' '.join(path) + ' ' if path else ''}--help: best {min(seconds):.3f} s, "
              f"median {medians[path]:.3f} s")
    slowest = max(medians, key=medians.get)
    print(f"slowest: mer-bench {' '.join(slowest)} --help, median {medians[slowest]:.3f} s "
          f"({len(medians)} commands, {repeat} runs each)")


if __name__ == "__main__":
    main()
