"""The Offline-vs-online, VOC, Inspector and Operations pages in a real headless Chromium: each
redirects to the login without a session, renders the seeded data without console errors, and
shows customers' text as text; the slice filter (and a heatmap click) and the VOC search change
what is shown. A screenshot of each page is saved (copied to $ABVOC_SCREENSHOTS when set)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from dashboards import feeds
from tests.dashboards.pages_seed import HOSTILE, OCR_ID, seed_pages
from tests.dashboards.test_dashboard_browser import WAIT_S, _choose, _log_in, _text, _wait
from tests.dashboards.test_weekly_report import _comment_on
from tests.evaluation.helpers import T0
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.live import serve

PAGES = ("divergence", "voc", "inspector", "operations")


@pytest.fixture
def pages_seeded(dash_app: Flask) -> int:
    return seed_pages(dash_app)


def _clean(driver: WebDriver) -> None:
    assert console_errors(driver) == []
    assert driver.execute_script("return window.__abvoc_xss === undefined")


def test_the_new_pages_in_a_browser(dash_app: Flask, pages_seeded: int, admin_key: str,
                                    tmp_path: Path, database_url: str) -> None:
    db_kind = database_url.split(":")[0].split("+")[0]
    shots = tmp_path / "screenshots"
    with serve(dash_app) as base, chromium() as driver:
        for path in PAGES:
            driver.get(f"{base}/dashboard/{path}")
            _wait(driver, "#login-form")
            assert driver.current_url == f"{base}/dashboard/login?next=/dashboard/{path}"
        _log_in(driver, admin_key)
        _wait(driver, "#ops-graph")  # the login goes back to the page asked for last
        driver.get(f"{base}/dashboard/divergence")

        # Offline vs online: the heatmap, the findings, the drill-down; the slice filter.
        _wait(driver, "#div-heatmap .main-svg")
        _wait(driver, "#div-findings")
        assert "accuracy gap" in _text(driver, "#div-findings")
        # The OCR answer's wrong symbol, blamed on its recognizer.
        _wait(driver, "#div-stages .main-svg")
        assert "wrong answers by the stage blamed" in _text(driver, "#div-stages")
        WebDriverWait(driver, WAIT_S).until(lambda d: "Slice all." in _text(d, "#div-drill"))
        whole = _text(driver, "#div-drill-table")
        screenshot(driver, shots, f"divergence-{db_kind}")
        _clean(driver)
        _choose(driver, "div-slice", "handwritten/high")
        WebDriverWait(driver, WAIT_S).until(
            lambda d: "Slice handwritten/high." in _text(d, "#div-drill"))
        assert _text(driver, "#div-drill-table") != whole
        assert OCR_ID in _text(driver, "#div-drill-predictions")
        assert "recognizer" in _text(driver, "#div-drill-stages")
        screenshot(driver, shots, f"divergence-handwritten-{db_kind}")
        _clean(driver)
        # A click on the heatmap's "all" column drills back to it.
        cells = driver.find_elements(By.CSS_SELECTOR, "#div-heatmap .nsewdrag")
        assert cells
        width = cells[0].size["width"]
        ActionChains(driver).move_to_element_with_offset(cells[0], -width // 3, 10).click() \
            .perform()
        WebDriverWait(driver, WAIT_S).until(lambda d: "Slice all." in _text(d, "#div-drill"))
        _clean(driver)

        # VOC: newest first, the hostile comment as text, the search filters.
        driver.get(f"{base}/dashboard/voc")
        _wait(driver, "#voc-table")
        count = _text(driver, "#voc-count")
        assert count.startswith(f"{_total(dash_app):,} reports match")
        assert HOSTILE in _text(driver, "#voc-table")
        assert not driver.find_elements(By.CSS_SELECTOR, "#voc-table script")
        screenshot(driver, shots, f"voc-{db_kind}")
        _clean(driver)
        box = driver.find_element(By.ID, "voc-search")
        box.send_keys("wrong exponent", Keys.ENTER)
        WebDriverWait(driver, WAIT_S).until(
            lambda d: _text(d, "#voc-count").startswith("1 reports match"))
        assert HOSTILE in _text(driver, "#voc-table")
        screenshot(driver, shots, f"voc-search-{db_kind}")
        _clean(driver)
        driver.get(f"{base}/dashboard/voc")  # a new visit: the whole stream, its first page
        WebDriverWait(driver, WAIT_S).until(lambda d: _text(d, "#voc-count") == count)
        first_page = _text(driver, "#voc-table")
        driver.find_element(By.ID, "voc-next").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: "page 2 of" in _text(d, "#voc-count"))
        assert _text(driver, "#voc-table") != first_page
        _clean(driver)

        # Inspector, reached from a link: the OCR stages, the correction, the blame.
        driver.get(f"{base}/dashboard/inspector?id={OCR_ID}")
        _wait(driver, "#insp-boxes .main-svg")
        assert "stage blamed: recognizer" in _text(driver, "#insp-blame")
        assert "x^{3}" in _text(driver, "#insp-converter")
        assert HOSTILE in _text(driver, "#insp-corrections")
        assert "sup" in _text(driver, "#insp-aligner")
        screenshot(driver, shots, f"inspector-{db_kind}")
        _clean(driver)

        # Operations: the hourly panels, the ledger's minutes, guardrails, the pipeline.
        driver.get(f"{base}/dashboard/operations")
        _wait(driver, "#ops-graph .main-svg")
        _wait(driver, "#ops-heartbeats")
        assert "cand-b" in _text(driver, "#ops-recent")
        assert "arm paused" in _text(driver, "#ops-guardrails")
        assert "<b>boom</b>" in _text(driver, "#ops-heartbeats")
        assert "Outbox backlog: 0 events" in _text(driver, "#ops-outbox")
        screenshot(driver, shots, f"operations-{db_kind}")
        _clean(driver)
        _choose(driver, "ops-candidate", "cand-a")
        WebDriverWait(driver, WAIT_S).until(lambda d: "cand-b" not in _text(d, "#ops-recent"))
        _clean(driver)


def test_long_user_text_wraps_inside_the_window(dash_app: Flask, pages_seeded: int,
                                               admin_key: str) -> None:
    """A comment of one 1,900-letter word wraps in its cell: the VOC and Inspector pages are
    no wider than the window, and the other columns keep a readable width."""
    _comment_on(dash_app, "voc-long", "A" * 1900, T0 + timedelta(hours=4))
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/voc")
        _wait(driver, "#login-form")
        _log_in(driver, admin_key)
        for path, table in (("voc", "#voc-table"), ("inspector?id=voc-long", "#insp-corrections")):
            driver.get(f"{base}/dashboard/{path}")
            WebDriverWait(driver, WAIT_S).until(lambda d, t=table: "A" * 1900 in _text(d, t))
            wide, window, first = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth, "
                "document.querySelector(arguments[0] + ' td').getBoundingClientRect().width]",
                table)
            assert wide <= window, (path, wide, window)
            assert first >= 60, (path, first)  # the date and time column is not squeezed
            _clean(driver)


def _total(app: Flask) -> int:
    return feeds.feed(app.extensions["abvoc"].db).total
