"""Tuned rows: a selection file written by `mer_bench.sweep.select` marks the validation-best configuration on the
board, links it to an evidence page (validation numbers for every candidate, test numbers for the chosen one only),
and bad or stale selection files are reported and skipped."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from mer_bench.cli import main
from mer_bench.leaderboard import build_site
from mer_bench.leaderboard import selections as leaderboard_selections
from mer_bench.leaderboard.views import number
from mer_bench.metrics import compute_metrics
from mer_bench.results import read_result
from mer_bench.runspec import RunSpec
from mer_bench.stats import mean_std
from mer_bench.sweep import select as sweep_select
from mer_bench.sweep.grid import SweepGrid

from tests.test_leaderboard_fixtures import noisy_predictions, result_dict, synthetic_labels, write_result_dict
from tests.test_leaderboard_site import tree

SEEDS = (1111, 1112, 1113)
# width -> (validation noise, test noise): width 16 is best on validation, width 64 best on test.
WIDTHS = {16: (0.1, 0.7), 64: (0.6, 0.1)}
EVIDENCE = "synthetic/selections/tunable.html"


def tunable_result(width: int, seed: int, sha256: str | None = None) -> dict:
    """A result whose validation metrics come from other predictions than its test metrics."""
    valid_noise, test_noise = WIDTHS[width]
    label, unimodal = synthetic_labels(120)
    data = result_dict("tunable", seed, label, *noisy_predictions(label, test_noise, seed), unimodal=unimodal,
                       overrides={"width": width}, sha256=sha256)
    valid_label, _ = synthetic_labels(60, seed=1)
    data["metrics"]["valid"] = {"all": compute_metrics("sims", valid_label,
                                                       *noisy_predictions(valid_label, valid_noise, seed + 7))}
    return data


def write_results(folder: Path, sha256: str | None = None) -> None:
    for width in WIDTHS:
        for seed in SEEDS:
            write_result_dict(tunable_result(width, seed, sha256), folder)
    label, unimodal = synthetic_labels(120)
    for seed in SEEDS:
        write_result_dict(result_dict("plain", seed, label, *noisy_predictions(label, 0.3, seed), unimodal=unimodal),
                          folder)


def write_selection(results: Path) -> Path:
    """Select with the sweep's own code, as `mer-bench sweep select` does, into <results>-selections."""
    specs = tuple(RunSpec("tunable", "synthetic", seed, (("width", width),)) for width in WIDTHS for seed in SEEDS)
    grid = SweepGrid(path=results.parent / "tuning.toml", models=(), results=results,
                     selections=results.with_name(results.name + "-selections"), data_dir=None, probes=False,
                     specs=specs)
    criterion = sweep_select.Criterion()
    (selection,) = sweep_select.select(grid, criterion)
    return sweep_select.write_selection(selection, grid, criterion)


def metric_mean(width: int, split: str) -> float:
    values = [tunable_result(width, seed)["metrics"][split]["all"]["regression"]["has0_acc2"] for seed in SEEDS]
    return mean_std(values)[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    top = tmp_path_factory.mktemp("tuning")
    write_results(top / "results")
    selection = write_selection(top / "results")
    out = top / "site"
    # finds results-selections beside the results by itself; every candidate shown (--all-candidates)
    report = build_site([top / "results"], out, tuned_only=False)
    return top, selection, out, report


def test_fixture_validation_best_is_not_test_best():
    """Otherwise marking the validation-best row would not show that the test split played no part."""
    assert max(WIDTHS, key=lambda width: metric_mean(width, "valid")) == 16
    assert max(WIDTHS, key=lambda width: metric_mean(width, "test")) == 64


def test_format_matches_the_sweep_writer():
    assert (leaderboard_selections.SELECTION_FORMAT, leaderboard_selections.SELECTION_VERSION) == \
        (sweep_select.SELECTION_FORMAT, sweep_select.SELECTION_VERSION)


def test_validation_best_row_is_marked_tuned_and_linked(built):
    _, _, out, report = built
    assert len(report.tuned) == 1 and report.skipped_selections == []
    board = (out / "synthetic" / "index.html").read_text()
    tuned_rows = re.findall(r'<tr class="tuned">.*?</tr>', board, re.S)
    assert len(tuned_rows) == 4                       # one per track table, one per output in the main table
    for row in tuned_rows:
        assert "width=16" in row and 'href="selections/tunable.html"' in row and "tuned on validation" in row
    assert all("width=64" not in row for row in tuned_rows) and "width=64" in board   # a shown, unmarked row
    rows = list(csv.DictReader(io.StringIO((out / "synthetic" / "synthetic-regression.csv").read_text())))
    marks = {row["settings"]: (row["tuned"], row["selection"]) for row in rows}
    assert marks == {"width=16": ("yes", "selections/tunable.html"), "width=64": ("", ""), "defaults": ("", "")}
    model_page = (out / "synthetic" / "models" / report.tuned[0].group.slug).with_suffix(".html").read_text()
    assert 'href="../selections/tunable.html"' in model_page


def test_evidence_page_lists_candidates_and_shows_test_metrics_only_for_the_chosen(built):
    _, _, out, _ = built
    page = (out / EVIDENCE).read_text()
    candidates = re.search(r'<table class="board sortable" id="candidates">.*?</table>', page, re.S).group(0)
    rows = re.findall(r"<tr( class=\"chosen\")?>\s*<th scope=\"row\"[^>]*>(\S+)</th>\s*<td[^>]*>([^<]+)</td>"
                      r"\s*<td[^>]*>([^<]+)</td>", candidates)
    assert [(chosen, rank, settings) for chosen, rank, settings, _ in rows] == [
        (' class="chosen"', "1", "width=16"), ("", "2", "width=64")]          # best first, the chosen highlighted
    for (_, _, _, valid), width in zip(rows, (16, 64)):
        assert valid.startswith(number(metric_mean(width, "valid")) + " ± ")
    assert "Validation Acc-2 (Has0)" in candidates and "complete" in page.lower()
    assert "validation (whole split)" in page and "mean over seeds (seeds 1111, 1112, 1113)" in page
    chosen_test = re.search(r'<table class="board" id="chosen-test-regression">.*?</table>', page, re.S).group(0)
    assert number(metric_mean(16, "test")) in chosen_test
    assert number(metric_mean(64, "test")) not in page                      # never a candidate's test score
    for seed in SEEDS:                                                       # links to the chosen runs
        assert re.search(rf'href="\.\./models/tunable-[0-9a-f]+\.html#run-{seed}"', page)
    assert "mer-bench sweep select tuning.toml --metric has0_acc2 --track regression" in page
    assert str(out.parent) not in page                                     # no path of this machine


def test_results_json_holds_the_evidence_without_candidate_test_metrics(built):
    _, selection, out, _ = built
    (board,) = json.loads((out / "results.json").read_text())["boards"]
    (evidence,) = board["selections"]
    assert evidence["page"] == "selections/tunable.html" and evidence["selected"]["overrides"] == {"width": 16}
    assert [c["overrides"] for c in evidence["candidates"]] == [{"width": 16}, {"width": 64}]
    assert evidence["candidates"][1]["valid"]["mean"] == round(metric_mean(64, "valid"), 6)
    assert all("test" not in candidate for candidate in evidence["candidates"])
    assert [row["tuned"] for row in board["tables"][1]["rows"]].count(True) == 1
    assert read_result(selection.parent / json.loads(selection.read_text())["selected"]["result_files"][0])


def test_tuned_only_leaves_out_the_unchosen_candidates(built, tmp_path):
    top, _, out, _ = built
    report = build_site([top / "results"], tmp_path / "site")            # the default: each tuned model once
    assert report.hidden == 1
    board = (tmp_path / "site" / "synthetic" / "index.html").read_text()
    assert "width=64" not in board and "width=16" in board and ">plain</a>" in board
    assert len(list((tmp_path / "site" / "synthetic" / "models").iterdir())) == 2
    assert "1 row of configurations that a selection considered but did not choose is left out" in board
    assert json.loads((tmp_path / "site" / "results.json").read_text())["boards"][0]["hidden_candidates"] == 1
    assert (tmp_path / "site" / EVIDENCE).read_bytes() == (out / EVIDENCE).read_bytes()


def test_build_is_deterministic_wherever_the_files_live(built, tmp_path):
    """Copies elsewhere, passed as one folder holding results and selections, give the same bytes."""
    top, _, out, _ = built
    shutil.copytree(top / "results", tmp_path / "copy" / "results")
    shutil.copytree(top / "results-selections", tmp_path / "copy" / "results-selections")
    report = build_site([tmp_path / "copy"], tmp_path / "site", tuned_only=False)
    assert report.skipped == [] and len(report.tuned) == 1            # the selection file is not a bad result
    assert tree(tmp_path / "site") == tree(out)


def test_bad_and_stale_selection_files_are_reported_and_skipped(built, tmp_path, capsys):
    top, selection, _, _ = built
    folder = tmp_path / "selections"
    shutil.copytree(selection.parent.parent, folder)
    good = json.loads(selection.read_text())
    (folder / "broken.json").write_text("{not json")
    (folder / "future.json").write_text(json.dumps({**good, "version": 2}))
    (folder / "on-test.json").write_text(json.dumps({**good, "criterion": {**good["criterion"], "split": "test"}}))
    stale = {**good, "selected": {**good["selected"], "valid": {**good["selected"]["valid"], "mean": 0.123}}}
    (folder / "stale.json").write_text(json.dumps(stale))
    with pytest.raises(SystemExit) as exited:
        main(["leaderboard", "build", str(top / "results"), "--selections", str(folder), "--out",
              str(tmp_path / "site")])
    assert exited.value.code == 0
    captured = capsys.readouterr()
    for name, reason in (("broken.json", "cannot read selection file"), ("future.json", "version 2 is not supported"),
                         ("on-test.json", "at 'criterion/split'"), ("stale.json", "stale")):
        assert re.search(rf"Skipped selection: {re.escape(str(folder / name))}: [^\n]*{reason}", captured.err), name
    assert "Read 5 selection file(s)" in captured.out and "1 tuned row(s) shown, 4 skipped" in captured.out
    assert (tmp_path / "site" / EVIDENCE).exists()


def test_checksum_of_linked_results_decides_between_data_files(built, tmp_path):
    """The same runs on two data files (equal metrics, other checksum): only the board the selection used is tuned."""
    top, _, _, _ = built
    write_results(tmp_path / "other", sha256="f" * 64)
    report = build_site([top / "results", tmp_path / "other"], tmp_path / "site")
    assert [item.board.sha256 for item in report.tuned] == [read_result(next((top / "results").rglob(
        "tunable-*.json"))).dataset["sha256"]]
    assert len(report.boards) == 2 and report.skipped_selections == []
