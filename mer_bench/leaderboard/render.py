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
from mer_bench.leaderboard.checksums import checksum_note
from mer_bench.leaderboard.columns import STYLE_NAMES
from mer_bench.leaderboard.evidence import evidence_page
from mer_bench.leaderboard.figures import gates_figure, reliance_figure, robustness_figure
from mer_bench.leaderboard.modelpage import model_page
from mer_bench.leaderboard.ranking import ALPHA, Table
from mer_bench.leaderboard.selections import Tuned
from mer_bench.leaderboard.shared import CLASS_SENTENCES
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


def index_page(boards: list[tuple[Board, list[Table]]], result_count: int, stress: bool = False) -> str:
    """`stress`: link the stress page (`mer_bench.leaderboard.stress`), written when some runs are on family members."""
    rows = []
    for board, tables in boards:
        counts = {table.track: len(table.rows) for table in tables[1:]}     # the first is the main table
        rows.append({"board": board, "counts": [(track, counts.get(track)) for track in TRACK_ORDER],
                     "runs": len(board.runs), "last_update": board.last_update})
    last_update = max((row["last_update"] for row in rows), default="none")
    return render("index.html", root="", rows=rows, tracks=[TRACK_TITLES[track] for track in TRACK_ORDER],
                  last_update=last_update, result_count=result_count, stress=stress)


def board_page(board: Board, tables: list[Table], siblings: list[Board]) -> str:
    """`siblings`: boards of the same dataset name built from other data files, linked and never merged. The first
    table is the main one across tracks (`ranking.build_comparison`); its rows feed the figures."""
    main, *track_tables = tables
    return render("board.html", root="../", board=board, main=table_view(main),
                  tables=[table_view(table) for table in track_tables], checksum=checksum_note(board),
                  classes=CLASS_SENTENCES.get(board.style, ""), style_name=STYLE_NAMES.get(board.style, board.style),
                  robustness=robustness_figure(main.rows, board.slug), reliance=reliance_figure(main.rows, board.slug),
                  tuned=any(group.tuned for group in board.groups),
                  method=METHOD_TEXT, siblings=siblings, alpha=ALPHA, test_name="paired permutation test on "
                  "per-sample predictions, or a paired t-test over seeds where they cannot be paired")


def model_pages(board: Board) -> dict[str, str]:
    """{page relative to the board's folder: html} for every group of a board."""
    pages = {}
    for group in board.groups:
        page = model_page(board, group)
        pages[group.page] = render("model.html", root="../../", board=board, page=page,
                                   gates_figure=gates_figure(page["gates"], group.slug))
    return pages


def selection_page(item: Tuned) -> str:
    """The evidence page of one selection; it sits in <board>/selections/, two folders below the site's top."""
    return render("selection.html", root="../../", board=item.board, page=evidence_page(item))
