"""Building the site: escaping, synthetic labels, links, downloads, model pages, bad input, determinism, the CLI, and
the published board under leaderboards/."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_bench.cli import main
from mer_bench.leaderboard import build_site
from mer_bench.leaderboard.figures import COLOURED_ROWS
from mer_bench.leaderboard.site import MANIFEST
from mer_bench.leaderboard.svg import CONTEXT_COLOUR, CONTEXT_WIDTH

from tests.test_leaderboard_fixtures import (noisy_predictions, result_dict, synthetic_labels, write_board,
                                             write_result_dict)

EVIL = "<script>alert(1)</script>"
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A synthetic board (three models, one with markup in its settings, probes on one), built once for the module.
    Model names are plain names (a file with markup in one is skipped, see test_leaderboard_hostile); free text such
    as a setting's value reaches the pages as text."""
    results = tmp_path_factory.mktemp("results")
    write_board(results, {"steady": 0.15})
    write_board(results, {"noisy": 0.8}, overrides={"note": EVIL}, seeds=(1111, 1112, 1113))
    write_board(results, {"probed": 0.3}, probes={"text_reliance_share": 0.4, "follows_text_rate": None})
    out = tmp_path_factory.mktemp("site") / "site"
    report = build_site([results], out)
    return results, out, report


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_markup_in_a_setting_is_escaped_text(built):
    _, out, _ = built
    pages = {name: content.decode() for name, content in tree(out).items() if name.endswith(".html")}
    board = pages["synthetic/index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in board
    for name, html in pages.items():
        assert "<script>alert" not in html, name
        # the only script element of every page is the sorting script shipped with the site
        assert re.findall(r"<script\b[^>]*>", html) == [f'<script src="{"../" * name.count("/")}static/sort.js" '
                                                        'defer>'], name
    model_pages = [name for name in pages if name.startswith("synthetic/models/noisy-")]
    assert len(model_pages) == 1 and "&lt;script&gt;" in pages[model_pages[0]]


def test_synthetic_boards_say_so_and_links_are_relative(built):
    _, out, _ = built
    board = (out / "synthetic" / "index.html").read_text()
    # the title says synthetic once (not "Synthetic (synthetic data)"); the badge and the warning say it again
    assert re.search(r"<title>synthetic · mer-bench leaderboards</title>", board, re.I)
    assert re.search(r'<h1>synthetic <span class="subtitle">[^<]*</span> <span class="badge synthetic">', board, re.I)
    assert "synthetic data)" not in board
    assert "These results are on <strong>synthetic data</strong>" in board
    for path in out.rglob("*.html"):
        html = path.read_text()
        for link in re.findall(r'(?:href|src)="([^"]*)"', html):
            assert not link.startswith(("/", "http:", "https:", "//")), (path.name, link)
            if link and not link.startswith(("#", "data:")):
                assert (path.parent / link.split("#")[0]).exists(), (path.name, link)


def test_tables_show_subsets_gap_probes_and_conventions(built):
    _, out, _ = built
    board = (out / "synthetic" / "index.html").read_text()
    for header in ("Consistent ↑", "Inconsistent ↑", "Text-conflict ↑", "Gap<br>", "Text reliance", "Follows text",
                   "Robustness AUC", "Test subsets", "Probes (not ranked)"):
        assert header in board
    assert "SIMS-style: both clipped to [-1, 1]" in board          # the convention from metrics.describe
    assert "sample std (ddof=1)" in board and "95% CI [" in board
    assert "paired permutation test" in board and "α = 0.05" in board


def test_downloads_hold_means_std_n_and_intervals(built):
    _, out, _ = built
    rows = list(csv.DictReader(io.StringIO((out / "synthetic" / "synthetic-regression.csv").read_text())))
    assert [row["model"] for row in rows] == ["steady", "probed", "noisy"]
    assert rows[2]["settings"] == f"note={EVIL}"
    steady = rows[0]
    assert steady["has0_acc2_n"] == "3" and steady["has0_acc2_mark"] == "best"
    assert float(steady["has0_acc2_ci_low"]) < float(steady["has0_acc2_mean"]) < float(steady["has0_acc2_ci_high"])
    assert rows[1]["probe:text_reliance_share_mean"] == "0.4" and rows[0]["probe:text_reliance_share_mean"] == ""
    data = json.loads((out / "results.json").read_text())
    (board,) = data["boards"]
    assert board["synthetic"] is True and [table["track"] for table in board["tables"]] == [
        "comparison", "regression", "classification"]
    cell = board["tables"][1]["rows"][0]["cells"]["mae"]
    assert set(cell) == {"mean", "std", "n", "ci_low", "ci_high", "mark", "test", "p_value"}
    assert json.loads((out / "synthetic" / "results.json").read_text())["boards"] == data["boards"]


def test_model_page_lists_every_run_with_its_command(built):
    _, out, _ = built
    page = (out / "synthetic" / "models" / "steady.html").read_text()
    for seed in (1111, 1112, 1113):
        assert f"mer-bench run steady --dataset synthetic --seeds {seed}</code>" in page
    checksum = hashlib.sha256(b"synthetic").hexdigest()                # the fixtures' dataset checksum
    for fact in ("mer-bench-fixtures 1.0", "0123456789ab", "cpu (2 cores)", "12,345", checksum):
        assert fact in page
    assert "Gate weights" not in page                                # no gates stored: no section


def test_gate_weights_per_subset(tmp_path):
    label, unimodal = synthetic_labels(80)
    consistent = (np.sign(unimodal) == np.sign(label)[:, None]).all(axis=1)
    gates = np.where(consistent[:, None], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5])
    for seed in (1, 2):
        probs = noisy_predictions(label, 0.2, seed)[1]
        write_result_dict(result_dict("cmc", seed, label, probs=probs, unimodal=unimodal, gates=gates), tmp_path / "r")
    build_site([tmp_path / "r"], tmp_path / "site")
    page = (tmp_path / "site" / "synthetic" / "models" / "cmc.html").read_text()
    assert ('<tr><th scope="row">Consistent</th><td>2</td><td>0.600 ± 0.000</td><td>0.300 ± 0.000</td>'
            '<td>0.100 ± 0.000</td></tr>') in page
    assert '<tr><th scope="row">Inconsistent</th><td>2</td><td>0.200 ± 0.000</td>' in page
    board = (tmp_path / "site" / "synthetic" / "index.html").read_text()
    assert 'id="table-classification"' in board and 'id="table-regression"' not in board


def test_bad_files_are_reported_by_name_and_skipped(tmp_path, capsys):
    results = tmp_path / "results"
    write_board(results, {"fine": 0.2}, seeds=(1, 2))
    (results / "broken.json").write_text("{not json")
    label, _ = synthetic_labels(20)
    future = result_dict("fine", 3, label, noisy_predictions(label, 0.2, 3)[0])
    (results / "future.json").write_text(json.dumps({**future, "schema_version": 99}))
    (results / "incomplete.json").write_text(json.dumps({key: value for key, value in future.items()
                                                         if key != "parameters"}))
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "build", str(results), "--out", str(tmp_path / "site")])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    for name in ("broken.json", "future.json", "incomplete.json"):
        assert f"Skipped: {results / name}" in captured.err
    assert "schema_version 99 is not supported" in captured.err
    assert "2 used, 3 skipped" in captured.out
    assert (tmp_path / "site" / "synthetic" / "models" / "fine.html").exists()


def test_nothing_readable_is_an_error(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("[]")
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "build", str(tmp_path / "broken.json"), "--out", str(tmp_path / "site")])
    assert exit_info.value.code == 2
    assert "No readable result files" in capsys.readouterr().err and not (tmp_path / "site").exists()


def test_build_is_deterministic_and_removes_only_its_own_stale_files(built, tmp_path):
    results, out, _ = built
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    build_site([copy], tmp_path / "again")
    assert tree(tmp_path / "again") == tree(out)                       # byte-identical from the same results
    shutil.rmtree(copy / "synthetic" / "probed")
    (tmp_path / "again" / "notes.txt").write_text("mine")
    build_site([copy], tmp_path / "again")
    assert not (tmp_path / "again" / "synthetic" / "models" / "probed.html").exists()
    assert (tmp_path / "again" / "notes.txt").read_text() == "mine"    # not written by a build: kept
    assert "probed" not in (tmp_path / "again" / MANIFEST).read_text()


def test_refuses_a_folder_it_did_not_build(built, tmp_path):
    results, _, _ = built
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(Exception, match="not empty"):
        build_site([results], tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_published_board_is_reproducible(tmp_path):
    """leaderboards/site must be exactly what the README's rebuild command produces, with no extra flags:
    `mer-bench leaderboard build leaderboards/results --out leaderboards/site`."""
    results, site = REPOSITORY / "leaderboards" / "results", REPOSITORY / "leaderboards" / "site"
    if not results.exists():
        pytest.skip("leaderboards/results does not exist yet: no published board to check")
    assert site.exists(), "leaderboards/site is missing: run mer-bench leaderboard build leaderboards/results " \
                          "--out leaderboards/site"
    assert "mer-bench leaderboard build leaderboards/results --out leaderboards/site\n" in \
        (REPOSITORY / "leaderboards" / "README.md").read_text()
    with pytest.raises(SystemExit) as exited:
        main(["leaderboard", "build", str(results), "--out", str(tmp_path / "site")])
    assert exited.value.code == 0
    rebuilt, published = tree(tmp_path / "site"), tree(site)
    assert sorted(rebuilt) == sorted(published), "the published site has missing or extra files; rebuild it"
    changed = [name for name in rebuilt if rebuilt[name] != published[name]]
    assert not changed, f"rebuilding changes {changed[:5]}: rebuild and commit leaderboards/site"


def test_figures_are_inline_svg_with_titles_and_numbers(tmp_path):
    label, unimodal = synthetic_labels(60)
    probes = {"track": "regression", "metric": "has0_acc2", "clean": {"has0_acc2": 0.8},
              "reliance_share": {"mean": {"text": 0.7, "audio": 0.2, "vision": 0.1}},
              "robustness": {"rates": [0.1, 0.5], "noise": {"has0_acc2": [0.75, 0.7]},
                             "masking": {"has0_acc2": [0.7, 0.6]}}}
    gates = np.tile([0.6, 0.3, 0.1], (60, 1))
    for seed in (1, 2):
        score, probs = noisy_predictions(label, 0.3, seed)
        write_result_dict(result_dict("gated", seed, label, score, probs, unimodal=unimodal, probes=probes,
                                      gates=gates), tmp_path / "results")
    build_site([tmp_path / "results"], tmp_path / "site")
    board = (tmp_path / "site" / "synthetic" / "index.html").read_text()
    for figure in ("robustness-synthetic", "reliance-synthetic"):
        svg = re.search(rf'<svg class="figure" id="{figure}".*?</svg>', board, re.S).group(0)
        assert "<title id=" in svg and "<desc id=" in svg and 'role="img"' in svg and ("<path" in svg or "<rect" in svg)
    assert "0.7000" in board and "0.700" in board                  # the numbers beside the figures
    model = (tmp_path / "site" / "synthetic" / "models" / "gated.html").read_text()
    assert '<svg class="figure" id="gates-gated"' in model and "text: 0.600" in model


def test_robustness_colours_the_first_rows_and_greys_the_rest(tmp_path):
    """Two dozen coloured lines cannot be followed: the first COLOURED_ROWS rows of the main table (best first) are
    coloured with hover labels naming them, the other rows are grey lines without markers, counted in the legend."""
    probes = {"track": "regression", "metric": "has0_acc2", "clean": {"has0_acc2": 0.8},
              "reliance_share": {"mean": {"text": 0.7, "audio": 0.2, "vision": 0.1}},
              "robustness": {"rates": [0.1, 0.5], "noise": {"has0_acc2": [0.75, 0.7]},
                             "masking": {"has0_acc2": [0.7, 0.6]}}}
    models = {f"model-{rank:02d}": 0.1 + rank * 0.05 for rank in range(COLOURED_ROWS + 4)}   # model-00 is best
    write_board(tmp_path / "results", models, seeds=(1, 2), probes=probes)
    build_site([tmp_path / "results"], tmp_path / "site")
    board = (tmp_path / "site" / "synthetic" / "index.html").read_text()
    svg = re.search(r'<svg class="figure" id="robustness-synthetic".*?</svg>', board, re.S).group(0)
    grey = re.findall(rf'<path d="[^"]*" fill="none" stroke="{CONTEXT_COLOUR}" stroke-width="{CONTEXT_WIDTH}"/>', svg)
    assert len(grey) == 2 * 4 + 1                                  # two panels, plus the legend's sample
    assert "model-00 · score: 0.7500" in svg and "model-09 · score:" not in svg
    assert ">4 other rows (grey; see the table)</text>" in svg


def test_a_board_on_another_file_of_a_published_dataset_says_so(tmp_path):
    label, _ = synthetic_labels(40)
    for seed in (1, 2):
        write_result_dict(result_dict("m", seed, label, noisy_predictions(label, 0.3, seed)[0], dataset="mosi",
                                      style="mosi", synthetic=False, sha256="e" * 64), tmp_path / "results")
    build_site([tmp_path / "results"], tmp_path / "site")
    board = (tmp_path / "site" / "mosi" / "index.html").read_text()
    assert '<p class="warning checksum-mismatch">Not the published file: the data file' in board
