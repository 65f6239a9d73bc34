"""End to end in real headless Chromium: build a site from fixture results, open it from disk, read the tables, sort
by clicking a header, check the console stayed clean, and save a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mer_bench.leaderboard import build_site

from tests.test_leaderboard_fixtures import write_board

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="needs Debian chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
                              "CI installs them in .ci/setup-chromium.sh"),
]

MODELS = {"steady": 0.15, "close-second": 0.17, "noisy": 0.6}
EVIL = "<script>alert(1)</script>"     # in a setting's value: model names are plain names, settings are free text


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    results, out = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("site") / "site"
    write_board(results, MODELS, n=200, probes={"text_reliance_share": 0.4, "follows_text_rate": 0.3,
                                                 "robustness_auc": None})
    write_board(results, {"unsafe": 0.9}, n=200, overrides={"note": EVIL})
    build_site([results], out)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1500,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def column_values(driver, table_id: str, header_text: str) -> list[str]:
    """Text of one column's cells (reproduced rows), in the order the page shows them."""
    from selenium.webdriver.common.by import By
    table = driver.find_element(By.ID, table_id)
    headers = [header.text.split("\n")[0] for header in table.find_elements(By.CSS_SELECTOR, "thead tr:last-child th")]
    index = next(i for i, text in enumerate(headers) if text.startswith(header_text))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody.reproduced tr")
    # the first line of a cell: a model's name without its settings line, a mean without its spread line
    return [row.find_elements(By.CSS_SELECTOR, "th, td")[index].text.split("\n")[0] for row in rows]


def save_screenshot(driver, tmp_path_factory, name: str, element=None) -> Path:
    """Save a screenshot (scrolled to `element`) to a temporary folder and print where, for a person to look at."""
    if element is not None:
        driver.execute_script("arguments[0].scrollIntoView();", element)
    path = tmp_path_factory.mktemp("screenshots") / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000          # an empty or blank page compresses to far less
    return path


def severe_logs(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def test_index_lists_the_board_and_links_to_it(site, browser):
    from selenium.webdriver.common.by import By
    browser.get((site / "index.html").as_uri())
    assert "Leaderboards" in browser.title
    link = browser.find_element(By.CSS_SELECTOR, "#boards tbody th a")
    assert "synthetic" in link.text.lower()
    link.click()
    assert browser.current_url.endswith("/synthetic/index.html")
    assert browser.find_element(By.ID, "table-regression").is_displayed()
    assert severe_logs(browser) == []


def test_board_tables_sort_by_clicking_a_header(site, browser, tmp_path_factory):
    from selenium.webdriver.common.by import By
    browser.get((site / "synthetic" / "index.html").as_uri())
    assert "synthetic" in browser.find_element(By.TAG_NAME, "h1").text.lower()
    models = column_values(browser, "table-regression", "Model")
    assert set(models) == {*MODELS, "unsafe"}
    assert models[0] == "steady"                      # ranked by the main metric, best first
    settings = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#table-regression .settings")]
    assert f"note={EVIL}" in settings                 # shown as text, never run
    mae = browser.find_element(By.XPATH, "//table[@id='table-regression']//thead//th[starts-with(., 'MAE')]")
    mae.click()                                       # first click: best (lowest MAE) first
    first = [float(text.split(" ")[0]) for text in column_values(browser, "table-regression", "MAE")]
    assert first == sorted(first)
    assert mae.get_attribute("aria-sort") == "ascending"
    mae.click()                                       # second click: reversed
    second = [float(text.split(" ")[0]) for text in column_values(browser, "table-regression", "MAE")]
    assert second == sorted(second, reverse=True) and second != first
    browser.find_element(By.XPATH, "//table[@id='table-regression']//thead//th[starts-with(., 'Model')]").click()
    by_name = column_values(browser, "table-regression", "Model")
    assert by_name == ["close-second", "noisy", "steady", "unsafe"]          # alphabetical now, no longer by rank
    best = browser.find_elements(By.CSS_SELECTOR, "#table-regression td.best")
    assert best and "95% CI" in best[0].get_attribute("title")
    save_screenshot(browser, tmp_path_factory, "board.png", browser.find_element(By.ID, "regression"))
    assert severe_logs(browser) == []


def test_model_page_shows_runs_and_commands(site, browser, tmp_path_factory):
    from selenium.webdriver.common.by import By
    browser.get((site / "synthetic" / "models" / "steady.html").as_uri())
    commands = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#commands code.command")]
    assert commands == [f"mer-bench run steady --dataset synthetic --seeds {seed}" for seed in (1111, 1112, 1113)]
    save_screenshot(browser, tmp_path_factory, "model.png")
    browser.find_element(By.LINK_TEXT, "mer-bench leaderboards").click()
    assert browser.current_url.endswith("/index.html")
    assert severe_logs(browser) == []


@pytest.fixture(scope="module")
def tuned_site(tmp_path_factory):
    """A board with a tuned row: two configurations of one model and the selection that chose one on validation."""
    from tests.test_leaderboard_selections import write_results, write_selection
    top = tmp_path_factory.mktemp("tuning")
    write_results(top / "results")
    write_selection(top / "results")
    build_site([top / "results"], top / "site")
    return top / "site"


def test_tuned_badge_leads_to_the_selection_evidence(tuned_site, browser, tmp_path_factory):
    from selenium.webdriver.common.by import By
    browser.get((tuned_site / "synthetic" / "index.html").as_uri())
    browser.find_element(By.CSS_SELECTOR, "#table-regression tr.tuned a.badge.tuned").click()
    assert browser.current_url.endswith("/synthetic/selections/tunable.html")
    rows = browser.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")
    assert [row.get_attribute("class") for row in rows] == ["chosen", ""]           # best first, chosen marked
    assert [row.find_element(By.CSS_SELECTOR, "td").text for row in rows] == ["width=16", "width=64"]
    save_screenshot(browser, tmp_path_factory, "selection.png")
    browser.find_element(By.LINK_TEXT, "seed 1111").click()
    assert "/synthetic/models/tunable-" in browser.current_url and browser.current_url.endswith("#run-1111")
    assert severe_logs(browser) == []


PUBLISHED = Path(__file__).resolve().parent.parent / "leaderboards" / "site"


def inside_window(driver, element) -> bool:
    """Whether the element is drawn and lies horizontally within the window (no scrolling needed to see it)."""
    box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.right, r.width, "
                                "r.height, window.innerWidth];", element)
    left, right, width, height, window_width = box
    return width > 0 and height > 0 and left >= 0 and right <= window_width


@pytest.mark.skipif(not (PUBLISHED / "synthetic" / "index.html").exists(), reason="no published board")
def test_published_board_at_1400_ranks_every_model_together_with_subsets_in_view(browser, tmp_path_factory):
    """What a reader of the published board sees at 1400 x 900: CMC and the baselines in one ranked table, the
    headline and subset columns without horizontal scrolling, and the figures drawn."""
    from selenium.webdriver.common.by import By
    browser.set_window_size(1400, 900)
    try:
        browser.get((PUBLISHED / "synthetic" / "index.html").as_uri())
        table = browser.find_element(By.ID, "table-comparison")
        models = column_values(browser, "table-comparison", "Model")
        assert {"cmc", "tfn", "mult", "self-mm"} <= set(models)
        outputs = set(column_values(browser, "table-comparison", "Output"))
        assert outputs == {"score", "probabilities"}                   # both tracks in one ranking
        marks = table.find_elements(By.CSS_SELECTOR, "td.best, td.tied")
        assert marks and any("probabilities" in cell.find_element(By.XPATH, "..").text for cell in marks)
        headers = table.find_elements(By.CSS_SELECTOR, "thead tr:last-child th")
        wanted = ("Model", "Acc-2 (Has0)", "F1 (Has0)", "Acc-3", "Consistent", "Inconsistent", "Text-conflict")
        for name in wanted:
            header = next(h for h in headers if h.text.startswith(name))
            assert inside_window(browser, header), name
        first_row = table.find_elements(By.CSS_SELECTOR, "tbody.reproduced tr")[0]
        assert all(inside_window(browser, cell) for cell in first_row.find_elements(By.CSS_SELECTOR, "th, td"))
        save_screenshot(browser, tmp_path_factory, "published-1400.png")
        for figure in ("robustness-synthetic", "reliance-synthetic"):
            svg = browser.find_element(By.ID, figure)
            browser.execute_script("arguments[0].scrollIntoView();", svg)
            size = svg.size
            assert size["width"] > 200 and size["height"] > 100, figure
            assert svg.find_elements(By.CSS_SELECTOR, "path, rect")
        save_screenshot(browser, tmp_path_factory, "published-figures.png")
        regression = browser.find_element(By.ID, "table-regression")
        probe = regression.find_element(By.CSS_SELECTOR, "thead th.probe")
        assert not probe.is_displayed()                                 # one click away
        browser.find_element(By.CSS_SELECTOR, "label[for='show-probes-regression']").click()
        assert probe.is_displayed()
        browser.get((PUBLISHED / "synthetic" / "models" / "cmc.html").as_uri())
        gates = browser.find_element(By.ID, "gates-cmc")
        assert gates.size["width"] > 200 and gates.size["height"] > 50
        assert len(gates.find_elements(By.CSS_SELECTOR, "rect")) >= 12    # 3 modalities x 4 subsets, and the key
        assert severe_logs(browser) == []
    finally:
        browser.set_window_size(1500, 1000)
