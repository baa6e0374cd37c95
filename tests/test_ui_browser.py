"""End to end in a real browser: Debian's headless Chromium, driven by Selenium through Debian's chromedriver,
against ``alphaforge ui`` started as a user would start it (the console script, ``--port 0``).

It opens the runs page of a populated database, sorts by Sharpe, applies a range filter, opens a run and checks
that the equity chart has drawn its points, opens a comparison of two runs, and saves a screenshot of each
page under ``test-artifacts/ui/`` (git-ignored). The browser console must stay free of errors (a
Content-Security-Policy violation is one). Under ``CI=true`` a missing browser fails the test: it never skips
in CI (``.ci/run`` installs ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ui_helpers import COMPLETED, N_BARS, Populated, populate, settle
from test_cli import _entry_point, _env

from alphaforge.db.store import Store

CHROMIUM = os.environ.get("ALPHAFORGE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ALPHAFORGE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--window-size=1400,1100")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
WAIT_S = 30


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    return None


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {missing}")
        pytest.skip(missing)
    tmp = tmp_path_factory.mktemp("ui-browser")
    url = f"sqlite:///{tmp / 'ui.db'}"
    out = populate(url, tmp / "cache")
    settle(url)
    yield out
    settle(url)


@pytest.fixture(scope="module")
def server(populated: Populated, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``alphaforge ui --db URL --port 0`` in a child process; yields the URL it printed."""
    cwd = tmp_path_factory.mktemp("ui-cwd")
    proc = subprocess.Popen([*_entry_point(), "ui", "--db", populated.url, "--port", "0"], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    yield driver
    driver.quit()


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def _navigate(driver: Any, action: Any) -> None:
    """Do ``action`` (a click that loads a new page) and wait until the new page's body has replaced the old."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    old = driver.find_element(By.TAG_NAME, "body")
    action()
    _wait(driver, ec.staleness_of(old))
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def _shot(driver: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, path  # a rendered page, not a blank image
    return path


def _console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")
            or "Content Security Policy" in e["message"]]


def _column(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#runs-table tbody {css}")]


def test_the_dashboard_in_a_real_browser(browser: Any, server: str, populated: Populated) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    store = Store(populated.url)
    sharpe = {h: store.read_metrics(h, phase="backtest")["sharpe"] for h in populated.completed}

    # the runs page
    browser.get(server)
    _wait(browser, ec.presence_of_element_located((By.ID, "runs-table")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr[data-run]")) == len(COMPLETED) + 2
    _shot(browser, "1-runs")

    # sort by Sharpe (the column header), best first
    _navigate(browser, lambda: browser.find_element(By.ID, "sort-sharpe").click())
    assert "sort=sharpe" in browser.current_url
    shown = [tr.get_attribute("data-run") for tr in browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")]
    assert shown[:len(sharpe)] == sorted(sharpe, key=lambda h: -sharpe[h])
    _shot(browser, "2-runs-sorted-by-sharpe")

    # a range filter: the runs above the median Sharpe
    cut = sorted(sharpe.values())[len(sharpe) // 2 - 1]
    box = browser.find_element(By.ID, "filters")
    box.clear()
    box.send_keys(f"sharpe > {cut!r} and max_drawdown < 1")
    _navigate(browser, lambda: browser.find_element(By.ID, "apply").click())
    assert "filters=" in browser.current_url
    kept = [tr.get_attribute("data-run") for tr in browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")]
    assert kept == sorted((h for h in sharpe if sharpe[h] > cut), key=lambda h: -sharpe[h])
    assert len(kept) == len(sharpe) // 2
    _shot(browser, "3-runs-filtered")

    # open the best run: its equity chart draws every one of its (short) curve's points
    browser.find_element(By.CSS_SELECTOR, f'#runs-table tr[data-run="{kept[0]}"] a.hash').click()
    chart = _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#equity-chart[data-rendered-points]")))
    assert chart.get_attribute("data-error") is None
    assert int(chart.get_attribute("data-rendered-points")) == N_BARS
    lines = browser.find_elements(By.CSS_SELECTOR, "#equity-chart .scatterlayer .trace path.js-line")
    assert len(lines) == 2  # equity and drawdown
    # plotly's own stylesheet applied (served as a file: the CSP refuses its inline <style>)
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('#equity-chart .main-svg')).position") == "absolute"
    assert all(len(re.findall(r"[ML]", line.get_attribute("d"))) >= N_BARS // 2 for line in lines)
    _shot(browser, "4-run")

    # compare two runs
    browser.get(server)
    for run_hash in populated.completed[:2]:
        browser.find_element(By.CSS_SELECTOR, f'#runs-table input[name="runs"][value="{run_hash}"]').click()
    browser.find_element(By.ID, "compare").click()
    compare = _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#compare-chart[data-rendered-points]")))
    assert compare.get_attribute("data-error") is None
    assert len(browser.find_elements(By.CSS_SELECTOR, "#compare-chart .scatterlayer .trace")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, "#compare-config tr.differs")
    _shot(browser, "5-compare")

    errors = _console_errors(browser)
    assert errors == [], "\n".join(errors)
