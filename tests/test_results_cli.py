"""`mer-bench results show | compare` on the published result files agree with the published board's numbers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mer_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
# The main synthetic board's files; the stress grid's members have boards of their own beside it.
RESULTS = ROOT / "leaderboards" / "results" / "synthetic"
BOARD = ROOT / "leaderboards" / "site" / "results.json"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main([*args])
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.fixture(scope="module")
def board_tables() -> dict[str, dict]:
    """The published board's track tables (not the cross-track main table), by track."""
    (board,) = [board for board in json.loads(BOARD.read_text())["boards"] if board["dataset"] == "synthetic"]
    return {table["track"]: table for table in board["tables"] if table["track"] != "comparison"}


def test_show_json_has_the_boards_mean_std_and_n_for_every_row_and_column(capsys, board_tables):
    status, out, _ = cli(capsys, "results", "show", str(RESULTS), "--json")
    assert status == 0
    shown = {(record["track"], record["model"], record["settings"]): record for record in json.loads(out)}
    compared = 0
    for track, table in board_tables.items():
        for row in table["rows"]:
            record = shown[(track, row["model"], row["settings"])]
            assert record["seeds"] == row["seeds"]
            for column, cell in row["cells"].items():
                if column.startswith("probe:"):
                    continue
                mine = record["cells"][column]
                assert (mine["mean"], mine["std"], mine["n"]) == (cell["mean"], cell["std"], cell["n"]), column
                compared += 1
    assert compared > 100


def test_compare_gives_the_boards_p_value_against_the_best_row(capsys, board_tables):
    table = board_tables["regression"]
    best = next(row for row in table["rows"] if row["cells"]["mae"]["mark"] == "best")
    other = next(row for row in table["rows"] if row["cells"]["mae"]["test"] == "permutation")
    status, out, _ = cli(capsys, "results", "compare", best["model"], other["model"], str(RESULTS),
                         "--track", "regression", "--json")
    assert status == 0
    [found] = json.loads(out)
    mae = next(item for item in found["columns"] if item["column"] == "mae")
    assert mae["test"]["method"] == "permutation"
    assert round(mae["test"]["p_value"], 4) == other["cells"]["mae"]["p_value"]
    assert mae["second"]["mean"] == other["cells"]["mae"]["mean"]


def test_show_filters_and_csv(capsys):
    status, out, _ = cli(capsys, "results", "show", str(RESULTS), "--model", "tfn", "--track", "regression", "--csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["model"], row["track"]) for row in rows] == [("tfn", "regression")]
    assert float(rows[0]["has0_acc2_mean"]) > 0.5 and rows[0]["seeds"] == "1111 1112 1113"


@pytest.mark.parametrize("args, phrase", [
    (("show", str(RESULTS), "--model", "no-such-model"), "No results match --model no-such-model; models: "),
    (("compare", "cmc", "tfn", str(RESULTS)), "both 'cmc' and 'tfn' on one track"),   # no track in common
    (("show", str(RESULTS), "--json", "--csv"), "Give --json or --csv, not both."),
])
def test_results_user_errors_are_one_line(capsys, args, phrase):
    status, out, err = cli(capsys, "results", *args)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and phrase in err and err.startswith("Error: ")


def test_compare_asks_for_a_row_id_when_a_model_has_several_configurations(capsys):
    tuned = [str(path) for path in sorted((RESULTS / "cmc").glob("*.json"))
             if json.loads(path.read_text())["spec"]["overrides"]]
    status, _, err = cli(capsys, "results", "compare", "cmc", "cmc-gt", *tuned, str(RESULTS / "cmc-gt"))
    assert status == 2 and err.count("\n") == 1
    assert "'cmc' has " in err and "configurations on synthetic" in err and "name one by its row id: cmc-" in err
