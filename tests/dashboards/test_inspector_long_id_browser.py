"""An Inspector link whose id is longer than any prediction id, in a real headless Chromium: the
link's id was cut to the limit and looked up, so the page said "No prediction <the first 64
characters> in the store", naming an id nobody sent; it says the id is too long, and the limit."""

from __future__ import annotations

from flask import Flask

from app.auth import create_key
from tests.dashboards.test_annotate_browser import _until_text
from tests.dashboards.test_dashboard_browser import _log_in, _wait
from tests.support.browser import chromium
from tests.support.live import serve


def test_a_link_with_an_over_long_id_says_so(dash_app: Flask) -> None:
    key = create_key(dash_app.extensions["abvoc"].db, ["admin"], name="admin")["key"]
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/")
        _wait(driver, "#login-form")
        _log_in(driver, key)
        _wait(driver, "#ann-claim")
        driver.get(f"{base}/dashboard/inspector?id={'p' * 70}")
        _until_text(driver, "#insp-too-long", "70 characters")
        assert driver.find_element("css selector", "#insp-too-long").text == (
            "The id is 70 characters long, and a prediction id is at most 64: no prediction "
            "has it. Was the link cut or changed on its way?")
        assert not driver.find_elements("css selector", "#insp-missing")
        # An id of the limit is looked up as it is.
        driver.get(f"{base}/dashboard/inspector?id={'p' * 64}")
        _until_text(driver, "#insp-missing", "p" * 64)
