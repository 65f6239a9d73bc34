"""`leaderboard build` on hostile and careless input: names with path syntax, reader bombs, forged metrics, formula
injection in the CSV downloads, links in the results folder, odd file names, many files.

Hostile files are derived from a real published result (leaderboards/results/synthetic), so every check runs on the
kind of file a real run writes. Each bad file must be skipped with one message naming the file and the field, and
the rest of the build must go on; nothing may ever be written outside --out.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mer_bench.cli import main
from mer_bench.errors import UserError
from mer_bench.leaderboard.reported import load_reported
from mer_bench.leaderboard.site import write_files

from tests.test_leaderboard_fixtures import noisy_predictions, result_dict, synthetic_labels, write_result_dict

REPOSITORY = Path(__file__).resolve().parent.parent
REAL = REPOSITORY / "leaderboards" / "results" / "synthetic"
# A baseline that stores both outputs (score and probabilities), so both tracks' checks run on it.
# Found by pattern: run ids change when a board is republished. The published files are part of the repository, so a
# missing one fails the tests that read it instead of skipping them.
REAL_FILE = min((REAL / "mean").glob("mean-synthetic-s1111-*.json"), default=REAL / "mean" / "missing.json")


def real_result() -> dict[str, Any]:
    return json.loads(REAL_FILE.read_text())


def copy_real(results: Path, models: tuple[str, ...] = ("mean",)) -> None:
    for model in models:
        shutil.copytree(REAL / model, results / "synthetic" / model)


def build(results: Path, out: Path, capsys, *options: str) -> tuple[int, str, str]:
    """Run the CLI; by default without the published selection files beside the real results."""
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "build", str(results), "--out", str(out), *(options or ["--no-selections"])])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def skipped_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("Skipped")]


def set_field(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


# ---- names that reach paths ----------------------------------------------------------------------------------------

def _rename_subset(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data = copy.deepcopy(data)
        data["dataset"]["subsets"][name] = data["dataset"]["subsets"].pop("consistent")
        return data
    return change


NAME_CASES = {
    "sha256 path escape": (("dataset", "sha256"), "/../../.", "dataset/sha256"),
    "sha256 absolute": (("dataset", "sha256"), "/tmp/" + "0" * 59, "dataset/sha256"),
    "sha256 uppercase": (("dataset", "sha256"), "A" * 64, "dataset/sha256"),
    "model with slashes": (("spec", "model"), "../../escape", "spec/model"),
    "model in full-width letters": (("spec", "model"), "ｍｅａｎ", "spec/model"),
    "model with a bidi override": (("spec", "model"), "mean\u202e", "spec/model"),
    "model with markup": (("spec", "model"), "<script>alert(1)</script>", "spec/model"),
    "dataset with a dot-dot": (("spec", "dataset"), "..", "spec/dataset"),
    "registered model name": (("model", "name"), "a b", "model/name"),
    "plugin name": (("model", "plugin"), "x/../y", "model/plugin"),
    "environment plugin name": (("environment", "plugin", "name"), "javascript:alert(1)", "environment/plugin/name"),
    "run id": (("run_id",), "../../run", "run_id"),
    "spec data checksum": (("spec", "data_sha256"), "/../../.", "spec/data_sha256"),
}


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_a_name_that_is_not_plain_skips_the_file_and_nothing_leaves_out(case, tmp_path, capsys):
    field, value, label = NAME_CASES[case]
    results, out = tmp_path / "results", tmp_path / "site"
    copy_real(results)
    # a second data file of the same dataset name: the board folders are then named with the checksum
    hostile = set_field(real_result(), field, value)
    if field != ("spec", "data_sha256"):
        # as a file written before run ids named the data: the named field is then the first one found wrong
        hostile["spec"].pop("data_sha256", None)
    if field != ("dataset", "sha256"):
        hostile["dataset"]["sha256"] = "f" * 64
    (results / "hostile.json").write_text(json.dumps(hostile))
    code, printed, err = build(results, out, capsys)
    assert code == 0
    (line,) = skipped_lines(err)
    assert line.startswith(f"Skipped: {results / 'hostile.json'}: ") and f"'{label}'" in line
    assert "3 used, 1 skipped" in printed
    assert set(tmp_path.iterdir()) == {results, out}                   # nothing written beside the site
    assert all(path.resolve().is_relative_to(out.resolve()) for path in files_under(out))


def test_a_subset_name_that_is_not_plain_skips_the_file(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results)
    (results / "hostile.json").write_text(json.dumps(_rename_subset("../../x")(real_result())))
    code, _, err = build(results, tmp_path / "site", capsys)
    assert code == 0
    (line,) = skipped_lines(err)
    assert "hostile.json" in line and "'dataset/subsets/../../x'" in line


def test_a_selection_with_names_that_are_not_plain_is_skipped(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results, ("cmc",))
    selection = json.loads((REPOSITORY / "leaderboards" / "results-selections" / "synthetic" / "cmc.json").read_text())
    selection["selected"]["result_files"] = ["../../../../../../etc/passwd", "../bomb.json"]
    (tmp_path / "bomb.json").write_text('{"dataset": {"sha256": ' + "9" * 5000 + "}}")
    selections = tmp_path / "selections"
    selections.mkdir()
    (selections / "cmc.json").write_text(json.dumps(selection))
    (selections / "evil.json").write_text(json.dumps({**selection, "model": "../../cmc"}))
    code, printed, err = build(results, tmp_path / "site", capsys, "--selections", str(selections))
    assert code == 0
    assert "1 tuned row(s) shown" in printed                         # the good selection, links to odd files ignored
    lines = [line for line in err.splitlines() if line.startswith("Skipped selection")]
    assert len(lines) == 1 and "evil.json" in lines[0] and "'model'" in lines[0]


# ---- the one writer ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("relative", ["../escape.html", "/tmp/escape.html", "a/../../escape.html", "", ".",
                                      "a/./b.html", "a\\..\\b.html"])
def test_the_site_writer_refuses_any_path_outside_out_before_writing(relative, tmp_path):
    out = tmp_path / "site"
    with pytest.raises(UserError, match="refusing to write"):
        write_files(out, {"index.html": b"fine", relative: b"escape"})
    assert set(tmp_path.iterdir()) <= {out} and not (out / "index.html").exists()


def test_a_link_in_the_site_folder_pointing_outside_is_refused(tmp_path, capsys):
    results, out, elsewhere = tmp_path / "results", tmp_path / "site", tmp_path / "elsewhere"
    copy_real(results)
    assert build(results, out, capsys)[0] == 0
    elsewhere.mkdir()
    shutil.rmtree(out / "synthetic")
    (out / "synthetic").symlink_to(elsewhere)                        # a folder of the site now leads elsewhere
    code, _, err = build(results, out, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "refusing to write" in err
    assert list(elsewhere.iterdir()) == []


# ---- reader bombs, numbers and types -------------------------------------------------------------------------------

def _text_edit(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)
    return edit


def _data_edit(field: tuple[str, ...], value: Any) -> Callable[[str], str]:
    return lambda text: json.dumps(set_field(json.loads(text), field, value))


REGRESSION = ("metrics", "test", "all", "regression")
BOMBS = {
    "giant integer": (_text_edit('"parameters": ', '"parameters": ' + "9" * 5000 + ", \"x\": "), "digits"),
    "giant integer in a seed": (_text_edit('"seed": 1111', '"seed": 1' + "0" * 40), "digits"),
    "deep nesting": (_text_edit('"environment": {', '"environment": {"deep": ' + "[" * 100_000 + "]" * 100_000
                                + ", "), "nested deeper"),
    "moderate nesting": (_text_edit('"environment": {', '"environment": {"deep": ' + "[" * 500 + "]" * 500 + ", "),
                         "nested deeper"),
    "metric of 1e308": (_data_edit((*REGRESSION, "mae"), 1e308), "metrics/test/all/regression/mae"),
    "metric overflowing to inf": (_text_edit('"mae": ', '"mae": 1e400, "x": '), "out of the float range"),
    "NaN literal": (_text_edit('"mae": ', '"mae": NaN, "x": '), "NaN"),
    "Infinity literal": (_text_edit('"mae": ', '"mae": -Infinity, "x": '), "Infinity"),
    "accuracy above 1": (_data_edit((*REGRESSION, "has0_acc2"), 1.5), "metrics/test/all/regression/has0_acc2"),
    "unknown metric": (_data_edit((*REGRESSION, "acc99"), 0.5), "acc99"),
    "unknown track": (_data_edit(("metrics", "test", "all", "ranking"), {}), "ranking"),
    "metric as a string": (_data_edit((*REGRESSION, "mae"), "0.1"), "mae"),
    "plugin record as a string": (_data_edit(("environment", "plugin"), "baselines"), "environment/plugin"),
    "summary as a number": (_data_edit(("model", "summary"), 5), "model/summary"),
    "negative parameter count": (_data_edit(("parameters",), -1), "parameters"),
    "huge timing": (_data_edit(("timings", "fit"), 1e300), "timings/fit"),
    "huge probe": (_data_edit(("probes",), {"text_reliance_share": 1e300}), "probes/text_reliance_share"),
    "ragged probabilities": (lambda text: json.dumps(_ragged(json.loads(text))), "predictions/probs"),
    "subset index out of range": (_data_edit(("predictions", "subsets", "consistent"), [0, 10**6]),
                                  "predictions/subsets/consistent"),
    "not valid UTF-8": (lambda text: "\udcff" + text, "cannot read"),
    "a JSON list": (lambda text: "[]", "(top level)"),
}


def _ragged(data: dict[str, Any]) -> dict[str, Any]:
    data["predictions"]["probs"][0] = [0.5, 0.5]
    return data


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_a_hostile_or_broken_file_is_skipped_with_one_message(case, tmp_path, capsys):
    edit, expected = BOMBS[case]
    results = tmp_path / "results"
    copy_real(results)
    text = edit(REAL_FILE.read_text())
    (results / "hostile.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    code, printed, err = build(results, tmp_path / "site", capsys)
    assert code == 0, err
    (line,) = skipped_lines(err)
    assert line.startswith(f"Skipped: {results / 'hostile.json'}: ") and expected in line, line
    assert len(line) < 1000 and "Traceback" not in err
    assert "3 used, 1 skipped" in printed


# ---- forged metrics ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subset", ["all", "consistent"])
def test_metrics_that_disagree_with_the_stored_predictions_are_skipped(subset, tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results, ("mean", "lf-dnn"))
    for path in sorted((results / "synthetic" / "mean").glob("*.json")):   # the worst model claims the best scores
        data = json.loads(path.read_text())
        data["metrics"]["test"][subset]["regression"]["has0_acc2"] = 0.99
        path.write_text(json.dumps(data))
    code, printed, err = build(results, tmp_path / "site", capsys)
    assert code == 0
    lines = skipped_lines(err)
    assert len(lines) == 3 and all(f"metrics/test/{subset}/regression/has0_acc2'" in line and
                                   "its stored predictions give" in line for line in lines)
    rows = _csv_rows(tmp_path / "site" / "synthetic" / "synthetic-regression.csv")
    assert [row["model"] for row in rows] == ["lf-dnn"]


def test_a_file_without_predictions_is_shown_but_takes_no_mark(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results, ("lf-dnn",))
    for path in sorted((REAL / "mean").glob("*.json")):                 # claims perfect scores, keeps no predictions
        data = json.loads(path.read_text())
        for tracks in data["metrics"]["test"].values():
            for values in tracks.values():
                values.update({key: 0.0 if key == "mae" else 1.0 for key in values})
        del data["predictions"]["score"], data["predictions"]["probs"]
        (results / path.name).write_text(json.dumps(data))
    code, _, err = build(results, tmp_path / "site", capsys)
    assert code == 0 and skipped_lines(err) == []
    rows = {row["model"]: row for row in _csv_rows(tmp_path / "site" / "synthetic" / "synthetic-regression.csv")}
    assert rows["mean"]["has0_acc2_mean"] == "1.0"
    assert not any(value for key, value in rows["mean"].items() if key.endswith("_mark"))
    assert rows["lf-dnn"]["has0_acc2_mark"] == "best"
    board = (tmp_path / "site" / "synthetic" / "index.html").read_text()
    assert "not ranked: a run of this row kept no per-sample predictions" in board


# ---- downloads -----------------------------------------------------------------------------------------------------

def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_csv_text_cells_cannot_be_formulas_and_negative_numbers_stay_numbers(tmp_path):
    label, unimodal = synthetic_labels(80)
    starts = {"=": "=HYPERLINK(\"http://x\")", "+": "+1+cmd", "-": "-2+3", "@": "@SUM(A1)", "\t": "\tx", "\r": "\rx"}
    for seed in (1, 2):
        anti = -label + np.random.default_rng(seed).normal(0, 0.1, label.shape)    # negative correlation
        for rank, (start, key) in enumerate(starts.items()):
            score = anti if start == "-" else noisy_predictions(label, 0.3, seed * 10 + rank)[0]
            write_result_dict(result_dict("m", seed, label, score, unimodal=unimodal, overrides={key: 1}),
                              tmp_path / "results")
    from mer_bench.leaderboard import build_site
    build_site([tmp_path / "results"], tmp_path / "site")
    rows = _csv_rows(tmp_path / "site" / "synthetic" / "synthetic-regression.csv")
    assert len(rows) == len(starts)
    for row in rows:                     # an apostrophe first; control characters as escapes, one line per row
        assert row["settings"].startswith("'") and (row["settings"][1] in starts or row["settings"][1:3] in ("\\t", "\\r")), row["settings"]
    assert {row["settings"] for row in rows} >= {"'\\tx=1", "'\\rx=1"}
    anti_row = next(row for row in rows if row["settings"].startswith("'-2+3"))
    assert float(anti_row["corr_mean"]) < 0 and anti_row["corr_mean"].startswith("-")   # a number, not neutralised
    data = json.loads((tmp_path / "site" / "results.json").read_text())   # the JSON download stays valid JSON
    assert {row["settings"] for row in data["boards"][0]["tables"][0]["rows"]} == {f"{key}=1" for key in
                                                                                   starts.values()}


def test_links_stay_relative_whatever_text_a_file_holds(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results)
    data = real_result()
    data["dataset"]["sha256"] = "e" * 64                       # a second data file: boards link to each other
    data["spec"].pop("data_sha256", None)                     # written as before run ids named the data
    for field in (("dataset", "title"), ("model", "summary"), ("model", "version"), ("environment", "git_commit"),
                  ("environment", "device_name"), ("created",)):
        data = set_field(data, field, 'javascript:alert(1)" onmouseover="alert(1)')
    (results / "other.json").write_text(json.dumps(data))
    assert build(results, tmp_path / "site", capsys)[0] == 0
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 3
    for page in pages:
        html = page.read_text()
        assert 'onmouseover="' not in html
        for link in re.findall(r'(?:href|src)="([^"]*)"', html):
            assert link == "data:," or re.fullmatch(r"[A-Za-z0-9._/#+-]*", link), (page.name, link)
    for source in load_reported()["sources"]:                  # the only absolute links: the packaged sources
        assert source["url"].startswith("https://")


# ---- the results folder itself -------------------------------------------------------------------------------------

def test_links_in_the_results_folder_are_not_followed_outside(tmp_path, capsys):
    results, outside = tmp_path / "results", tmp_path / "outside"
    copy_real(results)
    outside.mkdir()
    shutil.copy(min((REAL / "lf-dnn").glob("lf-dnn-synthetic-s1111-*.json")), outside / "real.json")
    (results / "linked.json").symlink_to(outside / "real.json")
    (results / "linked-folder").symlink_to(outside, target_is_directory=True)
    (results / "inside.json").symlink_to(results / "synthetic" / "mean" / REAL_FILE.name)
    code, printed, err = build(results, tmp_path / "site", capsys)
    assert code == 0
    (line,) = skipped_lines(err)
    assert "linked.json" in line and "outside" in line
    assert "4 used, 1 skipped" in printed                      # the folder link is not entered; the inner link is read
    assert not (tmp_path / "site" / "synthetic" / "models" / "lf-dnn.html").exists()


def test_control_characters_in_file_names_are_printed_as_escapes(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results)
    name = "evil\x1b[2J\u202e\n.json"
    (results / name).write_text("{not json")
    code, _, err = build(results, tmp_path / "site", capsys)
    assert code == 0
    (line,) = skipped_lines(err)
    assert "\x1b" not in err and "\u202e" not in err and "evil\\x1b[2J\\u202e\\n.json" in line


def test_a_folder_of_many_junk_files_is_read_in_linear_time(tmp_path, capsys):
    results = tmp_path / "results"
    copy_real(results)
    junk = results / "junk"
    junk.mkdir()
    for index in range(3000):
        (junk / f"{index:05d}.json").write_text("[" * 50 + "]" * 50 if index % 2 else "9" * 5000)
    started = time.perf_counter()
    code, printed, err = build(results, tmp_path / "site", capsys)
    assert code == 0 and "3 used, 3000 skipped" in printed and len(skipped_lines(err)) == 3000
    assert time.perf_counter() - started < 60


def test_nothing_readable_names_a_few_files_on_one_line(tmp_path, capsys):
    for index in range(50):
        (tmp_path / f"{index}.json").write_text("[]")
    code, _, err = build(tmp_path, tmp_path / "site", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "and 45 more skipped" in err
    assert not os.path.exists(tmp_path / "site")
