"""The stress page: built from a few small result files on synthetic family members (written here), it plots and
tabulates text-conflict accuracy and text reliance against the text conflict rate, with JSON and CSV downloads."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from mer_bench.data.synthetic_family import parse
from mer_bench.leaderboard import build_site
from mer_bench.leaderboard.stress import CONTEXT_COLOUR, CONTEXT_WIDTH, best_baseline, series_figure, series_titles
from tests.test_leaderboard_browser import CHROMEDRIVER, CHROMIUM, browser  # noqa: F401  (the Chromium fixture)
from tests.test_leaderboard_fixtures import noisy_predictions, result_dict, synthetic_labels, write_result_dict

RATES = (0.0, 0.2, 0.4)
MODELS = {"steady": 0.2, "text-follower": 0.5}      # model -> prediction noise


def _write_runs(results) -> None:
    label, unimodal = synthetic_labels(120)
    for rate in RATES:
        member = parse(f"synthetic+text_conflict-{rate:g}")
        name = member.name
        for rank, (model, noise) in enumerate(MODELS.items()):
            for seed in (1, 2):
                score, probs = noisy_predictions(label, noise, seed * 10 + rank)
                reliance = 0.3 + rate if model == "text-follower" else 0.3
                data = result_dict(model, seed, label, score, probs, unimodal=unimodal, dataset=name,
                                   probes={"text_reliance_share": reliance})
                data["dataset"]["generator"] = member.record()
                write_result_dict(data, results)
    # a run on plain data: not part of any series
    write_result_dict(result_dict("steady", 1, label, *noisy_predictions(label, 0.2, 1), unimodal=unimodal,
                                  dataset="mosi", synthetic=False), results)


@pytest.fixture(scope="module")
def stress_site(tmp_path_factory):
    results, out = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("site") / "site"
    _write_runs(results)
    build_site([results], out)
    return out


def test_the_stress_page_plots_and_tabulates_each_model_against_the_conflict_rate(stress_site):
    html = (stress_site / "stress" / "index.html").read_text()
    assert html.count('id="series-') == 1 and '<svg class="figure" id="stress-1"' in html
    assert "<script>" not in html.split("</head>")[1]          # inline SVG, no scripts in the page body
    table = html[html.index('id="stress-table-1"'):]
    assert ">text-follower</th>" in table and "<td>0.700</td>" in table   # reliance 0.3 + 0.4 at rate 0.4
    assert 'href="stress/index.html"' in (stress_site / "index.html").read_text()     # linked from the index


def test_the_downloads_hold_the_same_numbers(stress_site):
    record = json.loads((stress_site / "stress" / "stress.json").read_text())
    (series,) = record["series"]
    assert series["rates"] == list(RATES) and "text_conflict" not in series["knobs"]
    follower = series["models"]["text-follower"]
    assert follower["text_reliance"] == pytest.approx([0.3, 0.5, 0.7]) and follower["runs"] == [2, 2, 2]
    assert all(0 <= value <= 1 for value in follower["accuracy"])
    rows = list(csv.DictReader(io.StringIO((stress_site / "stress" / "stress.csv").read_text())))
    assert len(rows) == len(MODELS) * len(RATES)
    steady = [float(row["accuracy_text_conflict"]) for row in rows if row["model"] == "steady"]
    assert steady == pytest.approx(series["models"]["steady"]["accuracy"])


@pytest.mark.browser
@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="needs Debian chromium and chromium-driver, as tests/test_leaderboard_browser.py")
def test_the_stress_page_renders_in_chromium(stress_site, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get((stress_site / "stress" / "index.html").as_uri())
    figure = browser.find_element(By.ID, "stress-1")
    assert figure.size["width"] > 600 and figure.size["height"] > 150
    cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#stress-table-1 tbody tr:nth-child(2) td")]
    assert cells[-3:] == ["0.300", "0.500", "0.700"]
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors


def test_a_run_whose_text_conflict_subset_is_empty_is_used(tmp_path):
    """At text_conflict 0 the subset is empty: its metrics are undefined (null in the file), which the build's
    recomputation from the stored predictions must accept rather than skip the run."""
    label, _ = synthetic_labels(60)
    agreeing = label[:, None].repeat(3, axis=1)                     # every modality agrees: no text conflict
    member = parse("synthetic+text_conflict-0")
    data = result_dict("steady", 1, label, *noisy_predictions(label, 0.2, 1), unimodal=agreeing, dataset=member.name)
    data["dataset"]["generator"] = member.record()
    assert data["dataset"]["subsets"]["text-conflict"] == 0
    write_result_dict(data, tmp_path / "results")
    report = build_site([tmp_path / "results"], tmp_path / "site")
    assert report.skipped == [] and report.results == 1
    record = json.loads((tmp_path / "site" / "stress" / "stress.json").read_text())
    assert record["series"][0]["models"]["steady"]["accuracy"] == [None]


def _series(accuracy: dict[str, list], reliance: float = 0.5) -> dict:
    rates = [0.1, 0.2]
    models = {label: {"accuracy": values, "text_reliance": [reliance] * 2, "runs": [3, 3]}
              for label, values in accuracy.items()}
    return {"knobs": {"text_strength": 1.0}, "rates": rates, "models": models,
            "best_multimodal_baseline": best_baseline(models, len(rates))}


def test_the_best_multimodal_baseline_is_never_cmc_the_mean_or_one_modality():
    series = _series({"cmc": [0.9, 0.9], "cmc-gt (layers=2)": [0.95, 0.9], "mean": [0.8, 0.8],
                      "unimodal-a": [0.85, 0.85], "mtfn": [0.6, 0.3], "lf-dnn": [0.5, 0.4], "tfn": [None, 0.4]})
    best = series["best_multimodal_baseline"]
    assert best["model"] == ["mtfn", "lf-dnn"]                     # at 0.2: lf-dnn and tfn tie, first name wins
    assert best["accuracy"] == [0.6, 0.4] and best["text_reliance"] == [0.5, 0.5]
    assert best_baseline({"cmc": {"accuracy": [0.9], "text_reliance": [0.1]}}, 1) == {
        "model": [None], "accuracy": [None], "text_reliance": [None]}


def test_series_are_named_by_the_knobs_that_tell_them_apart():
    first, second = _series({"tfn": [0.5, 0.5]}), _series({"tfn": [0.5, 0.5]})
    second["knobs"] = {"text_strength": 0.2}
    assert series_titles([first, second]) == ["text_strength 1.0", "text_strength 0.2"]
    assert series_titles([first]) == ["Series 1"]


def test_focus_models_are_coloured_and_the_rest_are_grey_context():
    """With 26 models in colour no line could be followed: CMC's models, LF-DNN, TFN and the best baseline carry
    colour and hover labels, every other model is one thin grey line without markers."""
    others = {f"other-{i}": [0.3 + i / 100, 0.2] for i in range(20)}
    figure = series_figure(_series({"cmc": [0.7, 0.6], "lf-dnn": [0.2, 0.4], **others}), 1)
    paths = [shape for shape in figure.shapes if shape["kind"] == "path"]
    grey = [shape for shape in paths if shape["colour"] == CONTEXT_COLOUR]
    assert len(grey) == 2 * len(others) + 1                        # both panels, plus the legend's sample
    assert all(shape.get("width") == CONTEXT_WIDTH for shape in grey)
    labels = {shape["label"] for shape in figure.shapes if shape["kind"] == "marker" and shape["label"]}
    assert {"cmc: 0.7000", "lf-dnn: 0.4000", "other-19: 0.4900"} <= labels   # best baseline at 0.1 is other-19
    assert not any(label.startswith("other-0:") for label in labels)
    legend = [shape["text"] for shape in figure.shapes if shape["kind"] == "text" and shape["x"] == "760.0"]
    assert legend == ["cmc", "lf-dnn", "best multimodal baseline", "other models (20, grey)"]
