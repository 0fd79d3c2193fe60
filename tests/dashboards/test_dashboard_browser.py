"""The dashboard in a real headless Chromium: the login works, a page without it redirects to
it, the Experiments page renders real data without console errors, the slice filter changes
what is shown, and user text shows as text. A screenshot of each page is saved (and copied to
$ABVOC_SCREENSHOTS when set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboards.conftest import NAME
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.live import serve

WAIT_S = 30
STALE_RETRIES = 5


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path / "screenshots"


def _wait(driver: WebDriver, css: str):  # noqa: ANN202
    return WebDriverWait(driver, WAIT_S).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _log_in(driver: WebDriver, key: str) -> None:
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login-submit").click()


def _text(driver: WebDriver, css: str) -> str:
    """The element's text, found again when Dash re-renders it between the find and the read
    (a stale element), as a person reading the page would."""
    for _ in range(STALE_RETRIES):
        try:
            return driver.find_element(By.CSS_SELECTOR, css).text
        except StaleElementReferenceException:
            continue
    return driver.find_element(By.CSS_SELECTOR, css).text


def test_login_redirect_and_the_experiments_page(dash_app: Flask, seeded: int, admin_key: str,
                                                 shots: Path, database_url: str) -> None:
    db_kind = database_url.split(":")[0].split("+")[0]
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/experiments")
        _wait(driver, "#login-form")
        assert driver.current_url == f"{base}/dashboard/login?next=/dashboard/experiments"
        screenshot(driver, shots, f"login-{db_kind}")
        driver.find_element(By.ID, "key").send_keys("abv_wrong_key")
        driver.find_element(By.ID, "login-submit").click()
        assert "unknown or revoked" in _wait(driver, "#login-error").text
        # Chromium logs the refused login's 401 as a failed resource; nothing else may show.
        assert [e for e in console_errors(driver) if "status of 401" not in e["message"]] == []

        _log_in(driver, admin_key)
        _wait(driver, "#exp-decision")
        assert driver.current_url == f"{base}/dashboard/experiments"
        _wait(driver, "#exp-metrics-graph .main-svg")
        _wait(driver, "#exp-sequential-graph .main-svg")
        summary = _text(driver, "#exp-summary")
        assert NAME in summary  # the tags show as text
        assert "tuned for 5,000 per arm" in summary
        assert driver.execute_script("return window.__abvoc_xss === undefined")
        assert not driver.find_elements(By.CSS_SELECTOR, "#exp-summary b b, #exp-summary script")
        assert "Decision:" in _text(driver, "#exp-decision")
        assert "Sample-ratio check (chi-square, all units)" in _text(driver, "#exp-srm")
        arms = _text(driver, "#exp-arms")
        assert "control" in arms and "treatment" in arms and "cand-b" in arms
        whole = _text(driver, "#exp-comparisons")
        assert "correction_rate" in whole
        screenshot(driver, shots, f"experiments-{db_kind}")
        assert console_errors(driver) == []

        _choose(driver, "exp-slice", "handwritten/high")
        WebDriverWait(driver, WAIT_S).until(
            lambda d: "in slice handwritten/high" in _text(d, "#exp-srm"))
        WebDriverWait(driver, WAIT_S).until(lambda d: _text(d, "#exp-comparisons") != whole)
        assert "Metrics per arm (handwritten/high)" in driver.page_source
        screenshot(driver, shots, f"experiments-handwritten-{db_kind}")
        assert console_errors(driver) == []

        # The time filter: the slider's upper handle one hour back leaves the first two hours.
        sliced = _text(driver, "#exp-arms")
        driver.find_elements(By.CSS_SELECTOR, "#exp-time [role=slider]")[-1].send_keys(
            Keys.ARROW_LEFT)
        WebDriverWait(driver, WAIT_S).until(
            lambda d: _text(d, "#exp-window").startswith("Data from 2026-11-20 10:00 to "
                                                         "2026-11-20 12:00"))
        WebDriverWait(driver, WAIT_S).until(lambda d: _text(d, "#exp-arms") != sliced)
        assert console_errors(driver) == []

        driver.find_element(By.ID, "logout").click()
        _wait(driver, "#login-form")
        driver.get(f"{base}/dashboard/")
        _wait(driver, "#login-form")
        assert "/dashboard/login" in driver.current_url


def _choose(driver: WebDriver, dropdown_id: str, label: str) -> None:
    """Pick an option of a Dash dropdown the way a user does: open it, click the option."""
    driver.find_element(By.ID, dropdown_id).click()
    options = WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, "[role=listbox] [role=option]"))
    next(o for o in options if o.text == label).click()
