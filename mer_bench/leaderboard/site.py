"""Build a static leaderboard site from result files: read, group, aggregate, test, render, write.

The output is a pure function of the result files (and this package): no build time, no absolute paths, stable
ordering. So rebuilding a published board from its committed result files reproduces it byte for byte.

Site layout (all links relative):
    index.html, results.json, .nojekyll, static/{board.css,sort.js}
    <board>/index.html, <board>/results.json, <board>/<board>-<track>.csv, <board>/models/<group>.html
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mer_bench.errors import UserError
from mer_bench.results import ResultError, RunResult, read_results

from mer_bench.leaderboard.boards import Board, deduplicate, make_boards
from mer_bench.leaderboard.downloads import results_json, table_csv
from mer_bench.leaderboard.ranking import Table, build_tables
from mer_bench.leaderboard.render import board_page, index_page, model_pages, static_files
from mer_bench.leaderboard.reported import reported_for
from mer_bench.leaderboard.views import csv_name

MANIFEST = ".leaderboard-files"    # the files the last build wrote; lets a rebuild remove stale pages safely


@dataclass
class BuildReport:
    """What a build read, skipped and wrote."""

    results: int = 0
    skipped: list[ResultError] = field(default_factory=list)
    duplicates: int = 0
    boards: list[tuple[Board, list[Table]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def render_site(results: Iterable[RunResult]) -> tuple[dict[str, bytes], list[tuple[Board, list[Table]]], int]:
    """({relative path: content}, boards with their tables, duplicates dropped) for the given results."""
    unique, duplicates = deduplicate(results)
    boards = [(board, build_tables(board, reported_for(board.dataset, board.synthetic)))
              for board in make_boards(unique)]
    by_slug = {board.slug: board for board, _ in boards}
    files: dict[str, str] = {".nojekyll": "", "index.html": index_page(boards, len(unique)),
                             "results.json": results_json(boards)}
    files.update({f"static/{name}": text for name, text in static_files().items()})
    for board, tables in boards:
        siblings = [by_slug[slug] for slug in board.siblings]
        files[f"{board.slug}/index.html"] = board_page(board, tables, siblings)
        files[f"{board.slug}/results.json"] = results_json([(board, tables)])
        for table in tables:
            files[f"{board.slug}/{csv_name(board, table.track)}"] = table_csv(table)
        for name, html in model_pages(board).items():
            files[f"{board.slug}/models/{name}"] = html
    files[MANIFEST] = "".join(f"{path}\n" for path in sorted(files))
    return {path: text.encode("utf-8") for path, text in files.items()}, boards, duplicates


def build_site(paths: Iterable[Path], out: Path) -> BuildReport:
    """Read every result file under `paths` (bad ones are skipped and reported), then write the site to `out`."""
    paths = list(paths)
    results, problems = read_results(paths)
    if not results:
        skipped = "".join(f"; skipped {problem}" for problem in problems)
        raise UserError(f"No readable result files under {', '.join(map(str, paths))}; nothing to build{skipped}")
    files, boards, duplicates = render_site(results)
    write_files(Path(out), files)
    return BuildReport(len(results), problems, duplicates, boards, files)


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write the site; remove files an earlier build wrote that this one does not (never anything else)."""
    previous = _previous_files(out)
    for relative in sorted(previous - set(files)):
        stale = out / relative
        stale.unlink(missing_ok=True)
        _remove_empty_parents(stale.parent, out)
    for relative, content in files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:   # unchanged files keep their timestamps
            target.write_bytes(content)


def _previous_files(out: Path) -> set[str]:
    """Files of the last build in `out`; refuses a non-empty folder that no build wrote, so nothing else is lost."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder.")
    manifest = out / MANIFEST
    if not manifest.exists():
        if any(out.iterdir()):
            raise UserError(f"{out} is not empty and holds no earlier leaderboard build ({MANIFEST} is missing); "
                            "choose an empty or new folder.")
        return set()
    listed = manifest.read_text(encoding="utf-8").splitlines()
    return {line for line in listed if line and ".." not in Path(line).parts and not Path(line).is_absolute()}


def _remove_empty_parents(folder: Path, top: Path) -> None:
    while folder != top and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
