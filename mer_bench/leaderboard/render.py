"""HTML pages from the templates shipped with the package (Jinja2, autoescaped: names from result files are text).

Every link is relative (`root` is the way back to the site's top folder), so the site works from disk and from any
sub-path of a static host such as GitHub Pages.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

from mer_bench.leaderboard.boards import TRACK_ORDER, Board
from mer_bench.leaderboard.evidence import evidence_page
from mer_bench.leaderboard.modelpage import model_page
from mer_bench.leaderboard.ranking import ALPHA, Table
from mer_bench.leaderboard.selections import Tuned
from mer_bench.leaderboard.views import METHOD_TEXT, TRACK_TITLES, table_view

STATIC_FILES = ("board.css", "sort.js")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mer_bench.leaderboard", "templates"),
        autoescape=True,                         # every template is HTML; nothing from a result file is markup
        undefined=jinja2.StrictUndefined,        # a misspelled variable fails the build instead of printing nothing
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def static_files() -> dict[str, str]:
    folder = resources.files("mer_bench.leaderboard").joinpath("static")
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in STATIC_FILES}


def index_page(boards: list[tuple[Board, list[Table]]], result_count: int) -> str:
    rows = []
    for board, tables in boards:
        counts = {table.track: len(table.rows) for table in tables}
        rows.append({"board": board, "counts": [(track, counts.get(track)) for track in TRACK_ORDER],
                     "runs": len(board.runs), "last_update": board.last_update})
    last_update = max((row["last_update"] for row in rows), default="none")
    return render("index.html", root="", rows=rows, tracks=[TRACK_TITLES[track] for track in TRACK_ORDER],
                  last_update=last_update, result_count=result_count)


def board_page(board: Board, tables: list[Table], siblings: list[Board]) -> str:
    """`siblings`: boards of the same dataset name built from other data files, linked and never merged."""
    return render("board.html", root="../", board=board, tables=[table_view(table) for table in tables],
                  tuned=any(group.tuned for group in board.groups),
                  method=METHOD_TEXT, siblings=siblings, alpha=ALPHA, test_name="paired permutation test on "
                  "per-sample predictions, or a paired t-test over seeds where predictions are missing")


def model_pages(board: Board) -> dict[str, str]:
    """{page relative to the board's folder: html} for every group of a board."""
    return {group.page: render("model.html", root="../../", board=board, page=model_page(board, group))
            for group in board.groups}


def selection_page(item: Tuned) -> str:
    """The evidence page of one selection; it sits in <board>/selections/, two folders below the site's top."""
    return render("selection.html", root="../../", board=item.board, page=evidence_page(item))
