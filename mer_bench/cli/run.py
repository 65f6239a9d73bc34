"""`mer-bench run`: train and evaluate one model on one dataset over several seeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mer_bench.errors import UserError
from mer_bench.runspec import DEFAULT_SEEDS

if TYPE_CHECKING:
    from mer_bench.runner import RunOutcome

# Heavy modules (torch, the runner, metrics with sklearn, the plugins' models) are imported inside the command, so
# `mer-bench run --help` stays quick.

MAX_THREADS = 1024   # beyond any machine we know; more threads than that only exhaust the process table


def parse_seeds(text: str) -> list[int]:
    """Comma-separated seeds, each once (in the order given), each in numpy's and torch's range 0..2**32-1."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers, got '{text}'.") from None
    if not seeds:
        raise UserError("--seeds is empty.")
    from mer_bench.runner import check_seed

    for seed in seeds:
        try:
            check_seed(seed)
        except UserError as error:
            raise UserError(f"--seeds: {error}") from None
    return list(dict.fromkeys(seeds))   # "1,1,1" is one run, not three copies of it


def parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise UserError(f"--set takes key=value, got '{pair}'.")
        settings[key.strip()] = value.strip()
    return settings


@click.command("run")
@click.argument("model")
@click.option("--dataset", "-d", required=True, help="Dataset name (see `mer-bench datasets list`).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the datasets in the MMSA layout.")
@click.option("--data-file", type=click.Path(path_type=Path), help="The dataset's pickle file itself.")
@click.option("--force-dataset", is_flag=True, help="Score the file as --dataset even when its feature sizes are "
              "another registered dataset's (refused otherwise).")
@click.option("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), show_default=True,
              help="Comma-separated seeds, each 0..4294967295 (2**32-1); a seed given twice runs once.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override a model setting (repeatable).")
@click.option("--text-mode", type=click.Choice(["features", "bert"]), default=None,
              help="features: precomputed BERT features (default where the model takes them); bert: token ids "
                   "through BERT (the default of cenet and mag-bert).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epoch budget per training stage.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Results folder: OUT/<dataset>/<model>/<run-id>.json")
@click.option("--force", is_flag=True, help="Rerun runs whose result file exists. A run that another process is "
              "training now (its lock is held) is waited for, then reused, with or without --force.")
@click.option("--no-probes", is_flag=True, help="Skip the modality reliance and robustness probes.")
@click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=None,
              help="CPU threads for torch (default: the CPUs this process may use: affinity mask, cgroup quota, "
                   "Slurm's CPUs per task).")
def run_command(model, dataset, data_dir, data_file, force_dataset, seeds, settings, text_mode, device, epochs,
                out_dir, force, no_probes, threads) -> None:
    """Train and evaluate MODEL on a dataset over several seeds; write one result file per seed.

    Run ids name the data by its checksum, so a run on other data (another --data-file) is a new run, never the
    reuse of an old result. A run that another `mer-bench run` or sweep is training at the same moment is waited
    for and its result reused."""
    from mer_bench.cli.progress import make_progress
    from mer_bench.fileio import check_output_dir
    from mer_bench.plugins import get_catalog
    from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many

    if data_dir is not None and data_file is not None:
        raise UserError("Give either --data-dir or --data-file, not both.")
    seed_list = parse_seeds(seeds)   # before any slow step: a bad option fails at once
    raw_settings = parse_settings(settings)
    check_output_dir(out_dir, "--out folder")   # a file, read-only or full: say so before training, not after
    from mer_bench.threads import apply_threads

    apply_threads(threads)
    catalog = get_catalog()
    make_spec(catalog, model, dataset, seed_list[0], raw_settings, text_mode, epochs)   # names and settings first
    checksum = data_checksum(catalog, dataset, data_dir, data_file)
    specs = [make_spec(catalog, model, dataset, seed, raw_settings, text_mode, epochs, checksum) for seed in seed_list]
    with make_progress(specs) as progress:
        options = RunOptions(out_dir=out_dir, data_dir=data_dir, data_file=data_file, device=device, force=force,
                             force_dataset=force_dataset, probes=not no_probes, progress=progress,
                             on_wait=progress.waiting)
        outcomes = run_many(specs, options, catalog, on_start=progress.start_run, on_done=progress.finish_run)
    print_summary(outcomes, out_dir)


def print_summary(outcomes: list[RunOutcome], out_dir: Path) -> None:
    """One table per track: test metrics as mean ± sample std over seeds, for the whole test split and its subsets."""
    from rich.table import Table

    from mer_bench.cli.console import stdout as console
    from mer_bench.metrics import METRIC_KEYS, METRICS

    results = [outcome.result for outcome in outcomes]
    first = results[0]
    style = first.dataset["style"]
    subsets = list(first.metrics["test"])
    for track in ("regression", "classification"):
        if track not in first.metrics["test"]["all"]:
            continue
        title = (f"{first.spec.model} on {first.dataset['title']}"
                 f"{' (synthetic)' if first.dataset['synthetic'] else ''}: test, {track} track, "
                 f"{style.upper()}-style, mean ± std over {len(results)} seed(s)")
        table = Table("metric", *subsets, title=title)
        for key in METRIC_KEYS[(track, style)]:
            cells = [_cell([r.metrics["test"][subset][track].get(key) for r in results]) for subset in subsets]
            arrow = "↑" if METRICS[key].higher_is_better else "↓"
            table.add_row(f"{METRICS[key].label} {arrow}", *cells)
        console.print(table)
    if first.dataset["subsets"]:
        sizes = ", ".join(f"{name} {size}" for name, size in first.dataset["subsets"].items())
        console.print(f"Test subsets: {sizes} (of {first.dataset['sizes']['test']}).")
    skipped = sum(outcome.skipped for outcome in outcomes)
    console.print(f"{len(outcomes)} run(s), {skipped} reused from existing result files; results in {out_dir}/")


def _cell(values: list[float | None]) -> str:
    from mer_bench.stats import mean_std

    mean, std, n = mean_std(values)
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"
