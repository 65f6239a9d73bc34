"""`mer-bench data check | prepare | synth`: inspect a dataset file, convert it into the prepared cache, or write the
synthetic dataset as an MMSA pickle."""

from __future__ import annotations

import difflib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from mer_bench.cli.console import print_error
from mer_bench.cli.console import stdout as console
from mer_bench.errors import UserError
from mer_bench.plugins import get_catalog
from mer_bench.runspec import SEED_RANGE

if TYPE_CHECKING:
    from mer_bench.data.specs import DatasetSpec

# The --like choices are mer_bench.data.synthetic.SHAPES' keys, written out so `--help` need not import the generator
# (and torch with it); tests/test_cli.py checks that the two lists agree.
LIKE_CHOICES = ("mosei", "mosi", "sims", "sims-v2", "synthetic")


@click.group("data")
def data_group() -> None:
    """Check, prepare and generate dataset files."""


@dataclass(frozen=True)
class Target:
    """What a NAME|PATH argument resolved to: the spec, the file (None for generated data), the raw dict if it had to
    be read to find the spec, and how the spec was chosen."""

    spec: DatasetSpec
    path: Path | None
    raw: dict | None
    reason: str


def resolve_target(target: str, dataset: str | None, data_dir: Path | None, data_file: Path | None) -> Target:
    """A registered NAME (its file found as `run` finds it), or a PATH whose dataset is given with --dataset, named by
    the MMSA layout of the path, or read off the file's feature sizes."""
    from mer_bench.data.loading import locate, spec_from_content, spec_from_path
    from mer_bench.data.mmsa import read_pickle

    if data_dir is not None and data_file is not None:
        raise UserError("Give either --data-dir or --data-file, not both.")
    datasets = get_catalog().datasets
    if target in datasets:
        if dataset is not None and dataset != target:
            raise UserError(f"'{target}' is a dataset name; --dataset {dataset} contradicts it.")
        spec = datasets[target].value
        if spec.generate is not None and data_file is None:
            return Target(spec, None, None, "its name (generated)")
        return Target(spec, locate(spec, data_dir, data_file), None, "its name")
    path = Path(target)
    if not path.is_file():
        close = difflib.get_close_matches(target, sorted(datasets), n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(name) for name in close)}?" if close else ""
        raise UserError(f"'{target}' is neither a registered dataset nor a file.{hint} "
                        f"Datasets: {', '.join(sorted(datasets))}.")
    if data_dir is not None or data_file is not None:
        raise UserError("--data-dir and --data-file go with a dataset NAME; with a PATH, use --dataset to name it.")
    specs = [entry.value for entry in datasets.values()]
    if dataset is not None:
        return Target(get_catalog().dataset(dataset).value, path, None, "--dataset")
    if (spec := spec_from_path(path, specs)) is not None:
        return Target(spec, path, None, "its path")
    raw = read_pickle(path)
    spec, reason = spec_from_content(path, raw, specs)
    return Target(spec, path, raw, reason)


def target_options(command):
    """The options `check` and `prepare` share."""
    for option in reversed((
        click.argument("target", metavar="NAME|PATH"),
        click.option("--dataset", "-d", help="The dataset a PATH holds (default: from its path or feature sizes)."),
        click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding datasets in the MMSA layout."),
        click.option("--data-file", type=click.Path(path_type=Path), help="The file of dataset NAME."),
    )):
        command = option(command)
    return command


@data_group.command("check")
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(target: str, dataset: str | None, data_dir: Path | None, data_file: Path | None,
                  as_json: bool) -> None:
    """Validate a dataset file and describe it. Exit status 0 when usable, 2 when not."""
    from mer_bench.data.report import check_file, check_generated
    from mer_bench.data.validate import Problem

    resolved = resolve_target(target, dataset, data_dir, data_file)
    if resolved.path is None:
        report = check_generated(resolved.spec)
    else:
        report = check_file(resolved.spec, resolved.path, resolved.raw, resolved.reason)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif report["usable"]:
        print_report(report)
    errors = [Problem(**problem) for problem in report["problems"] if problem["severity"] == "error"]
    for problem in errors:
        print_error(f"Error: {problem.as_error(report['source'])}")
    if errors:
        raise click.exceptions.Exit(2)


def print_report(report: dict) -> None:
    from mer_bench.data.validate import Problem

    console.print(f"[bold]{report['dataset']}[/bold] ({report['title']}, {report['style'].upper()}-style labels), "
                  f"dataset chosen by {report['dataset_from']}", markup=True)
    console.print(f"source: {report['source']}", markup=False, soft_wrap=True)
    console.print(f"SHA-256: {report['sha256']} ({report['checksum']})", markup=False)
    if report["cache"] is not None:
        folder = f" at {report['cache']['folder']}" if report["cache"]["folder"] else ""
        console.print(f"prepared cache: {report['cache']['state']}{folder}", markup=False, soft_wrap=True)
    table = Table("split", "N", "audio", "vision", "text", "text_bert", "neg/neu/pos", "unimodal labels",
                  "subsets cons/incons/text-confl", title="Splits")
    for name, split in report["splits"].items():
        columns = split["columns"]
        shape = lambda key: _shape(columns, key)  # noqa: E731
        subsets = "/".join(map(str, split["subsets"].values())) if split["subsets"] else "not available"
        table.add_row(name, str(split["n"]), shape("audio"), shape("vision"), shape("text"), shape("text_bert"),
                      "/".join(map(str, split["labels"].values())), "yes" if split["unimodal_labels"] else "no",
                      subsets)
    console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if report["ignored_top_level_keys"]:
        console.print(f"ignored top-level keys: {', '.join(report['ignored_top_level_keys'])}", markup=False)
    for problem in report["problems"]:
        if problem["severity"] == "warning":
            console.print(Problem(**problem).as_note(), markup=False, soft_wrap=True)
    console.print("usable: yes", markup=False)


def _shape(columns: dict, key: str) -> str:
    column = columns.get(key) if columns else None
    if column is None:
        return "-"
    dims = "x".join(map(str, column["shape"])) if column["shape"] is not None else "?"
    return f"{dims} {column['dtype'].removeprefix('torch.')}"


@data_group.command("prepare")
@target_options
@click.option("--rebuild", is_flag=True, help="Convert again even if a fresh prepared copy exists.")
def prepare_command(target: str, dataset: str | None, data_dir: Path | None, data_file: Path | None,
                    rebuild: bool) -> None:
    """Convert a dataset file once into the prepared cache (plain memory-mapped arrays) that later runs load from."""
    from mer_bench.data.loading import prepare_dataset
    from mer_bench.data.validate import WARNING_PREFIX

    resolved = resolve_target(target, dataset, data_dir, data_file)
    if resolved.path is None:
        raise UserError(f"'{resolved.spec.name}' is generated in memory; there is no file to prepare "
                        "(`mer-bench data synth` writes one).")
    started = time.perf_counter()
    outcome = prepare_dataset(resolved.spec, resolved.path, resolved.raw, rebuild=rebuild)
    seconds = time.perf_counter() - started
    size = outcome.entry.total_size() / 2**20
    verb = {"fresh": "already prepared", "reused": "same content already prepared", "built": "prepared"}
    console.print(f"{resolved.spec.name} from {resolved.path}: {verb[outcome.status]} in {outcome.entry.folder} "
                  f"({size:.1f} MiB, {seconds:.1f} s)", markup=False, soft_wrap=True)
    for note in outcome.entry.manifest["notes"]:
        label = "warning" if note.startswith(WARNING_PREFIX) else "note"
        console.print(f"{label}: {note.removeprefix(WARNING_PREFIX)}", markup=False, soft_wrap=True)


@data_group.command("synth")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--like", type=click.Choice(LIKE_CHOICES), default="synthetic", show_default=True,
              help="Whose shapes, label style and split sizes to copy.")
@click.option("--n", "sizes", type=int, nargs=3, default=None, metavar="TRAIN VALID TEST",
              help="Samples per split, each 1..1,000,000 (default: those of --like).")
@click.option("--seed", type=int, default=0, show_default=True,
              help=f"Generator seed, {SEED_RANGE[0]}..{SEED_RANGE[1]} (same seed, same file).")
@click.option("--knob", "knobs", multiple=True, metavar="KNOB=VALUE",
              help="A knob of the synthetic family (docs/synthetic.md), e.g. text_conflict=0.3; repeatable.")
@click.option("--aligned", is_flag=True,
              help="Word-aligned layout, as MMSA's aligned_50.pkl (every modality the text's length, no lengths): "
                   "the same samples, aligned as the harness aligns them; run it as mosi-aligned or mosei-aligned.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def synth_command(out: Path, like: str, sizes: tuple[int, int, int] | None, seed: int, knobs: tuple[str, ...],
                  aligned: bool, force: bool) -> None:
    """Write a member of the synthetic family (planted cross-modal conflict, unimodal labels) as an MMSA pickle."""
    from mer_bench.data.mmsa import write_pickle
    from mer_bench.data.synthetic import SHAPES, estimated_bytes, request_problem
    from mer_bench.data.synthetic_family import member_from_options

    sizes = tuple(sizes) if sizes else SHAPES[like].sizes
    problem = request_problem(like, sizes, seed, available_memory())
    if problem:
        raise UserError(f"data synth: {problem}.")
    member = member_from_options(like, sizes, seed, knobs)
    # lens and dims change the size: the member's own shape is checked and generated (else the preset's name)
    shape = member.shape if member.lens or member.dims else like
    if shape is not like and (problem := request_problem(shape, sizes, seed, available_memory())):
        raise UserError(f"data synth: {problem}.")
    if out.exists() and not force:
        raise UserError(f"{out}: exists; pass --force to overwrite it.")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder.")
    needed, free = estimated_bytes(shape, sizes), shutil.disk_usage(out.parent).free
    if needed > free:
        raise UserError(f"{out.parent}: the file needs about {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is free.")
    write_pickle(generate_raw(shape, sizes, seed, member.knobs, aligned), out)
    console.print(f"wrote {out} ({like}-shaped{', word-aligned' if aligned else ''}, {'/'.join(map(str, sizes))} "
                  f"samples, seed {seed}, "
                  f"{out.stat().st_size / 2**20:.1f} MiB; member {member.name})", markup=False, soft_wrap=True)


def generate_raw(like, sizes: tuple[int, int, int], seed: int, knobs=None, aligned: bool = False) -> dict:
    """The generator, imported when data is generated (a module-level name, so tests can replace it)."""
    from mer_bench.data.synthetic import Knobs
    from mer_bench.data.synthetic import generate_raw as generate

    return generate(like, sizes, seed, aligned=aligned, knobs=knobs or Knobs())


def available_memory() -> int | None:
    """Bytes the system can give without swapping (MemAvailable), or None where /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
