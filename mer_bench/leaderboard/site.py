"""Build a static leaderboard site from result files: read, group, aggregate, test, render, write.

The output is a pure function of the result and selection files (and this package): no build time, no absolute
paths, stable ordering. So rebuilding a published board from its committed files reproduces it byte for byte.

Selection files (from `mer-bench sweep select`) mark the rows they chose as tuned on validation, each linked to an
evidence page; by default they are read from the `<results>-selections` folder beside each results folder.

Site layout (all links relative):
    index.html, results.json, .nojekyll, static/{board.css,sort.js}
    <board>/index.html, <board>/results.json, <board>/<board>-<track>.csv, <board>/models/<group>.html,
    <board>/selections/<model>.html (one per selection shown)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mer_bench.errors import UserError
from mer_bench.results import ResultError, RunResult

from mer_bench.leaderboard.boards import Board, deduplicate, make_boards
from mer_bench.leaderboard.downloads import results_json, table_csv
from mer_bench.leaderboard.intake import one_line, read_inputs
from mer_bench.leaderboard.ranking import Table, build_tables
from mer_bench.leaderboard.render import board_page, index_page, model_pages, selection_page, static_files
from mer_bench.leaderboard.reported import reported_for
from mer_bench.leaderboard.selections import (SelectionError, SelectionFile, Tuned, attach_selections,
                                              hide_unchosen_candidates, sibling_folders)
from mer_bench.leaderboard.stress import stress_files
from mer_bench.leaderboard.views import csv_name

SHOWN_PROBLEMS = 5                 # skipped files named in the one-line error when none was usable
MANIFEST = ".leaderboard-files"    # the files the last build wrote; lets a rebuild remove stale pages safely


@dataclass
class BuildReport:
    """What a build read, skipped and wrote."""

    results: int = 0
    skipped: list[ResultError] = field(default_factory=list)
    duplicates: int = 0
    boards: list[tuple[Board, list[Table]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    selection_folders: list[Path] = field(default_factory=list)       # where selection files were looked for
    selections_read: int = 0
    skipped_selections: list[SelectionError] = field(default_factory=list)   # unreadable, malformed or unmatched
    tuned: list[Tuned] = field(default_factory=list)                  # selections shown as tuned rows
    hidden: int = 0                                                   # rows of unchosen candidates left out


def render_site(results: Iterable[RunResult], selections: Iterable[SelectionFile] = (),
                tuned_only: bool = True) -> BuildReport:
    """The site's files for the given results and selections (nothing is read or written here). `tuned_only` (the
    default, so each tuned model appears once) leaves out the rows of configurations a selection considered but did
    not choose; their validation numbers stay on the selection's evidence page."""
    report = BuildReport()
    unique, report.duplicates = deduplicate(results)
    boards = make_boards(unique)
    report.tuned, report.skipped_selections = attach_selections(boards, selections)
    if tuned_only:
        report.hidden = hide_unchosen_candidates(report.tuned)
    report.boards = [(board, build_tables(board, reported_for(board.dataset, board.synthetic))) for board in boards]
    report.files = site_files(report.boards, report.tuned)
    return report


def site_files(boards: list[tuple[Board, list[Table]]], tuned: list[Tuned]) -> dict[str, bytes]:
    """{relative path: content} of every file of the site."""
    by_slug = {board.slug: board for board, _ in boards}
    runs = sum(len(board.runs) for board, _ in boards)
    stress = stress_files([run for board, _ in boards for run in board.runs])   # {} without family runs
    files: dict[str, str] = {".nojekyll": "", "index.html": index_page(boards, runs, stress=bool(stress)),
                             "results.json": results_json(boards), **stress}
    files.update({f"static/{name}": text for name, text in static_files().items()})
    for board, tables in boards:
        siblings = [by_slug[slug] for slug in board.siblings]
        files[f"{board.slug}/index.html"] = board_page(board, tables, siblings)
        files[f"{board.slug}/results.json"] = results_json([(board, tables)])
        for table in tables:
            files[f"{board.slug}/{csv_name(board, table.track)}"] = table_csv(table)
        for page, html in model_pages(board).items():
            files[f"{board.slug}/{page}"] = html
    for item in tuned:
        files[f"{item.board.slug}/{item.page}"] = selection_page(item)
    files[MANIFEST] = "".join(f"{path}\n" for path in sorted(files))
    return {path: text.encode("utf-8") for path, text in files.items()}


def build_site(paths: Iterable[Path], out: Path, selections: Iterable[Path] | None = None, *,
               tuned_only: bool = True, ignore_selections: bool = False) -> BuildReport:
    """Read every result file under `paths` and every selection file under `selections` (default: the
    `<results>-selections` folder beside each results folder), then write the site to `out`. Bad files of either
    kind are skipped and reported; `ignore_selections` reads no selection files at all."""
    paths = list(paths)
    folders = [] if ignore_selections else sibling_folders(paths) if selections is None else list(selections)
    inputs = read_inputs(paths, folders)
    if ignore_selections:    # selection files found among the results are recognised, then left unused
        inputs.selections, inputs.selection_problems = [], []
    if not inputs.results:
        problems = inputs.result_problems
        skipped = "".join(f"; skipped {one_line(str(problem))}" for problem in problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more skipped" if len(problems) > SHOWN_PROBLEMS else ""
        raise UserError(f"No readable result files under {', '.join(map(str, paths))}; nothing to build"
                        f"{skipped}{more}")
    report = render_site(inputs.results, inputs.selections, tuned_only)
    report.results, report.skipped, report.selection_folders = len(inputs.results), inputs.result_problems, folders
    report.selections_read = len(inputs.selections) + len(inputs.selection_problems)
    report.skipped_selections = inputs.selection_problems + report.skipped_selections
    write_files(Path(out), report.files)
    return report


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """The only place a build writes or removes files: write the site; remove files an earlier build wrote that this
    one does not (never anything else). Every path is checked with `site_path` before anything is touched, so a name
    that escaped the checks upstream still cannot reach outside `out`."""
    root = Path(out).resolve()
    targets = {relative: site_path(root, relative) for relative in files}
    previous = _previous_files(out)
    for relative in sorted(previous - set(files)):
        try:
            stale = site_path(root, relative)
        except UserError:      # a manifest line edited by hand to point elsewhere: not ours to remove
            continue
        stale.unlink(missing_ok=True)
        _remove_empty_parents(stale.parent, root)
    for relative, content in files.items():
        target = targets[relative]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:   # unchanged files keep their timestamps
            target.write_bytes(content)


_SAFE_PART = re.compile(r"[A-Za-z0-9._+-]+")   # every folder and file name a build makes (slugs, fixed names)


def site_path(root: Path, relative: str) -> Path:
    """`root / relative` resolved (links followed), when it is a plain relative path that stays inside `root`;
    otherwise a `UserError` and nothing is written."""
    parts = relative.split("/")        # not PurePosixPath: it would quietly drop "." parts and a trailing "/"
    plain = all(part not in (".", "..") and _SAFE_PART.fullmatch(part) for part in parts)
    target = (root / relative).resolve() if plain else None
    if target is None or target == root or not target.is_relative_to(root):
        raise UserError(f"{root}: refusing to write {relative[:200]!r}: it is not a plain path inside the site "
                        "folder.")
    return target


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
    while folder != top and folder.is_relative_to(top) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
