"""Claim next after a reload of the Annotate page, in a real headless Chromium: the reload forgot
the item the annotator holds, the claim gave it back with its lease as it was, and the page said
"Claimed item #1.", as if newly leased; it says the annotator still holds it."""

from __future__ import annotations

from flask import Flask

from app.auth import create_key
from tests.dashboards.annotation_seed import seed_queue
from tests.dashboards.test_annotate_browser import _claim_first, _until_text
from tests.dashboards.test_dashboard_browser import _wait
from tests.support.browser import chromium
from tests.support.live import serve


def test_a_claim_after_a_reload_says_the_item_is_still_held(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    key = create_key(db, ["annotate"], name="alice")["key"]
    with serve(dash_app) as base, chromium() as driver:
        _claim_first(driver, base, key)
        _until_text(driver, "#ann-message", "Claimed item #1.")
        driver.refresh()
        _wait(driver, "#ann-claim").click()
        _until_text(driver, "#ann-message", "You still hold item #1 (verification): label, "
                                            "skip or flag it first.")
        _until_text(driver, "#ann-summary", "Item #1 in verification")
