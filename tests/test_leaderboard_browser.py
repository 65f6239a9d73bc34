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
    headers = [header.text.split("\n")[0] for header in table.find_elements(By.CSS_SELECTOR, "thead th")]
    index = next(i for i, text in enumerate(headers) if text.startswith(header_text))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody.reproduced tr")
    return [row.find_elements(By.CSS_SELECTOR, "th, td")[index].text for row in rows]


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
    assert f"note={EVIL}" in column_values(browser, "table-regression", "Settings")   # shown as text, never run
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
