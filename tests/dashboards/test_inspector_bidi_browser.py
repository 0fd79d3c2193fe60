"""The Inspector's "Relabels" line in a real headless Chromium: a text label holding U+202E
(RIGHT-TO-LEFT OVERRIDE, which a text label may hold) reverses only itself, not who gave it,
the queue, or the labels after it (it showed "(gniniart ,dcba8765:bob) OG ,(noitacifirev ...")."""

from __future__ import annotations

from flask import Flask
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import select

from app.auth import create_key
from core.store.models import RelabelItem
from tests.dashboards.annotation_seed import seed_text_item
from tests.dashboards.test_annotate_browser import _until_text
from tests.dashboards.test_dashboard_browser import _log_in, _wait
from tests.evaluation.helpers import T0
from tests.support.browser import chromium
from tests.support.live import serve

# The left edge, on screen, of the first occurrence of a word in the line's text.
LEFT_OF = """
const li = [...document.querySelectorAll('#insp-blame li')]
    .find(e => e.textContent.startsWith('Relabels:'));
const node = li.firstChild, at = node.textContent.indexOf(arguments[0]);
const range = document.createRange();
range.setStart(node, at); range.setEnd(node, at + arguments[0].length);
return range.getBoundingClientRect().left;
"""


def _left(driver: WebDriver, word: str) -> float:
    return float(driver.execute_script(LEFT_OF, word))


def test_a_right_to_left_override_in_a_label_stays_in_the_label(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    pid = seed_text_item(db)
    with db.session() as s:
        item = s.scalars(select(RelabelItem).where(RelabelItem.prediction_id == pid)).one()
        item.status, item.label, item.annotator = "done", "\u202eSTOP sign", "alice:1234abcd"
        s.add(RelabelItem(queue="training", prediction_id=pid, reason="low_confidence",
                          priority=1.0, status="done", created_at=T0, input_hash="h-other",
                          candidate="reader", reasons=["low_confidence"], labels_needed=1,
                          label="GO", annotator="bob:5678abcd"))
    key = create_key(db, ["admin"], name="admin")["key"]
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/")
        _wait(driver, "#login-form")
        _log_in(driver, key)
        _wait(driver, "#ann-claim")
        driver.get(f"{base}/dashboard/inspector?id={pid}")
        _until_text(driver, "#insp-blame", "Relabels:")
        # Read left to right: the first label and its annotator, then the second and its.
        assert _left(driver, "Relabels:") < _left(driver, "alice") < _left(driver, "GO") \
            < _left(driver, "bob")
        assert _left(driver, "alice") < _left(driver, "verification")
