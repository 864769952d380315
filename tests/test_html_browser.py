"""The HTML leaderboard and paper tables in a real browser (headless Chromium, on demand: `pytest -m slow`).

Needs Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver) and selenium
(`pip install -e ".[browser]"`). Checks: the tables are there, clicking a header sorts, every embedded
plot decodes, the console stays free of errors, and a screenshot is saved (to $MMERBENCH_SCREENSHOTS
when set, else the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mmerbench.report import papers, render
from mmerbench.report.leaderboard import LeaderboardRequest, build

from report_helpers import fake_profile, fake_run, multilabel_metrics

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MMERBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MMERBENCH_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000"]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason='needs selenium: pip install -e ".[browser]"')
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _store(root: Path) -> Path:
    rows = {"br": (0.30, 0.25, 0.45), "cc": (0.31, 0.24, 0.46), "mult": (0.40, 0.20, 0.52),
            "tailor": (0.45, 0.18, 0.50), "<b>evil": (0.10, 0.40, 0.20)}
    for i, (method, (acc, hl, f1)) in enumerate(rows.items()):
        for seed in (1, 2, 3):
            fake_run(root, "mosei-aligned", method, f"{i:010d}", seed,
                     multilabel_metrics(acc + 0.01 * seed, hl, f1 - 0.005 * seed))
        fake_profile(root, "mosei-aligned", method, f"{i:010d}",
                     {"params": 10.0 ** (3 + i), "latency_ms_p50": 0.5 * (i + 1), "train_samples_per_s": 1000.0 / (i + 1)})
        fake_run(root, "synth-mosei-aligned", method, f"{i:010d}", 1, multilabel_metrics(acc, hl, f1),
                 data={"scale": 0.2, "seed": 0})
    return root


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _column_keys(driver, table, col: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('tbody tr.data'))"
        ".map(r => r.cells[arguments[1]].getAttribute('data-sort'));", table, col)


def _shots() -> Path | None:
    d = os.environ.get("MMERBENCH_SCREENSHOTS")
    return Path(d) if d else None


def test_leaderboard_page_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    doc = build(LeaderboardRequest(runs_dir=_store(tmp_path / "runs"), data="all"))
    page = render.write(doc, tmp_path / "out", "leaderboard", ["html"])[0]
    browser.get(page.resolve().as_uri())

    tables = browser.find_elements(By.CSS_SELECTOR, "table.board")
    assert len(tables) == 2  # real and synthetic, apart
    first = tables[0]
    assert len(first.find_elements(By.CSS_SELECTOR, "tbody tr.data")) == 5
    assert "<b>evil" in first.text  # shown as text
    assert not browser.find_elements(By.CSS_SELECTOR, "table.board b")

    headers = first.find_elements(By.CSS_SELECTOR, "th.sortable")
    titles = [h.text.replace("⇅", "").strip() for h in headers]
    col = titles.index("Micro-F1 ↑")
    headers[col].click()
    asc = [float(v) for v in _column_keys(browser, first, col)]
    assert asc == sorted(asc) and headers[col].get_attribute("aria-sort") == "ascending"
    headers[col].click()
    desc = [float(v) for v in _column_keys(browser, first, col)]
    assert desc == sorted(asc, reverse=True) and headers[col].get_attribute("aria-sort") == "descending"
    method_col = titles.index("method")
    headers[method_col].click()
    names = [r.find_elements(By.TAG_NAME, "td")[method_col].text
             for r in first.find_elements(By.CSS_SELECTOR, "tbody tr.data")]
    assert names == sorted(names, key=str.lower)

    imgs = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert len(imgs) == 2
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", i)
               for i in imgs)
    assert _console_errors(browser) == []

    # a laptop's width: the page itself never scrolls sideways, and the first column stays in view
    browser.set_window_size(1366, 900)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth;")
    assert browser.execute_script("return getComputedStyle(arguments[0].querySelector('td.first')).position;",
                                  first) == "sticky"

    shot = (_shots() or tmp_path) / "leaderboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_paper_tables_page_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    doc = papers.build(papers.TableRequest(ids=("tailor-t2", "robmmr-t2"), runs_dir=tmp_path / "runs"))
    page = render.write(doc, tmp_path / "out", "tables", ["html"])[0]
    browser.get(page.resolve().as_uri())
    tables = browser.find_elements(By.CSS_SELECTOR, "table.board")
    assert len(tables) == 2
    groups = [g.text for g in tables[0].find_elements(By.CSS_SELECTOR, "th.group")]
    assert "Aligned" in groups and "Unaligned" in groups
    headers = tables[0].find_elements(By.CSS_SELECTOR, "th.sortable")
    col = [h.text.replace("⇅", "").strip() for h in headers].index("Acc ↑")
    headers[col].click()
    asc = [float(v) for v in _column_keys(browser, tables[0], col)]
    assert asc == sorted(asc) and len(asc) == 13
    assert _console_errors(browser) == []
    shot = (_shots() or tmp_path) / "tables.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
    shutil.copy(page, shot.with_suffix(".html"))


def test_robustness_section_in_chromium(browser, tmp_path):
    """The robustness table and its metric-vs-level curves (noise, temporal masking) in the page."""
    from selenium.webdriver.common.by import By

    from test_robustness_report import robustness_store

    doc = build(LeaderboardRequest(runs_dir=robustness_store(tmp_path / "runs"), data="synthetic", reference="weak"))
    page = render.write(doc, tmp_path / "out", "leaderboard", ["html"])[0]
    browser.get(page.resolve().as_uri())
    assert "Robustness" in browser.find_element(By.TAG_NAME, "body").text
    tables = browser.find_elements(By.CSS_SELECTOR, "table.board")
    assert len(tables) == 2  # the main table and the robustness table
    rob = tables[1]
    assert len(rob.find_elements(By.CSS_SELECTOR, "tbody tr.data")) == 2
    groups = [g.text for g in rob.find_elements(By.CSS_SELECTOR, "th.group")]
    assert any("noise" in g for g in groups) and any("missing" in g for g in groups)
    imgs = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert len(imgs) == 2  # the two curves
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", i)
               for i in imgs)
    assert _console_errors(browser) == []
    shot = (_shots() or tmp_path) / "robustness.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
