"""Every dashboard page on a phone-sized window (390x844) in a real headless Chromium: the page
never scrolls sideways (a table too wide for it scrolls in its own box), every header link and
the log-out button are on screen, and the pages and the login declare a device-width viewport.
Before, the header ran off the right edge (Inspector ... Log out reachable only by scrolling)
and pages were 806-1009 px wide. Layout is the same on either store: SQLite only."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from core.store.models import Experiment
from dashboards.pages import PAGES
from tests.dashboards.pages_seed import seed_pages
from tests.dashboards.test_dashboard_browser import WAIT_S, _log_in, _wait
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.live import serve

_LAYOUT = """
const vw = document.documentElement.clientWidth;
const off = Array.from(document.querySelectorAll('header a, header button'))
  .filter(e => e.getBoundingClientRect().right > vw + 1).map(e => e.innerText);
const viewport = document.querySelector('meta[name=viewport]');
return {vw: vw, width: document.documentElement.scrollWidth, off: off,
        viewport: viewport ? viewport.content : null,
        rendered: document.querySelector('#page') !== null
                  && document.querySelector('#page').children.length > 0};
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_fits_a_phone(dash_app: Flask, admin_key: str, tmp_path: Path) -> None:
    seed_pages(dash_app)
    # A name of one long word (names are up to 100 characters) wraps instead of widening the
    # page: the experiment's summary line ran 1,557 px wide.
    with dash_app.extensions["abvoc"].db.session() as s:
        for experiment in s.scalars(select(Experiment)):
            experiment.name = (experiment.name + "W" * 100)[:100]
    with serve(dash_app) as base, chromium(390, 844) as driver:
        driver.get(f"{base}/dashboard/experiments")
        _wait(driver, "#login-form")
        login = driver.execute_script(_LAYOUT)
        assert login["viewport"] == "width=device-width, initial-scale=1"
        assert login["width"] <= login["vw"], login
        _log_in(driver, admin_key)
        for page in PAGES:
            driver.get(f"{base}/dashboard/{page.path}")
            WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(_LAYOUT)["rendered"])
            _wait(driver, "header")
            WebDriverWait(driver, WAIT_S).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#page *"))
            driver.execute_script("return new Promise(r => setTimeout(r, 1500))")
            shown = driver.execute_script(_LAYOUT)
            screenshot(driver, tmp_path / "screenshots", f"phone-{page.path}")
            assert shown["viewport"] == "width=device-width, initial-scale=1", page.path
            assert shown["off"] == [], (page.path, shown)
            assert shown["width"] <= shown["vw"], (page.path, shown)
            assert console_errors(driver) == [], page.path
