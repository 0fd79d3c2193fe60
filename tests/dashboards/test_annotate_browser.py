"""The Annotate page in a real headless Chromium: an annotator logs in, claims an item, sees its
image, the served and the shadow's output and the customer's correction (user text as text),
types a label with a live preview, is told (not crashed) when it is invalid, submits, skips,
flags, and labels a class with the picker; the store holds the labels under the annotator's
identity. A text item is labeled as holding no text with the tick (an empty field is
refused). A screenshot is saved (and copied to $ABVOC_SCREENSHOTS when set)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from app.auth import create_key
from core.store.models import RelabelItem, RelabelLabel
from tests.dashboards.annotation_seed import EVIL, seed_queue, seed_text_item
from tests.dashboards.test_dashboard_browser import WAIT_S, _log_in, _text, _wait
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.live import serve


def _until_text(driver: WebDriver, css: str, fragment: str) -> None:
    """Wait until an element at ``css`` shows ``fragment`` (Dash may re-render it meanwhile)."""
    WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: any(fragment in e.text for e in d.find_elements(By.CSS_SELECTOR, css)),
        message=f"{fragment!r} never showed in {css}")


def _type(driver: WebDriver, css: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, css)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)


def _claim_first(driver: WebDriver, base: str, key: str) -> None:
    """Log in to the dashboard with `key` and press Claim next."""
    driver.get(f"{base}/dashboard/")
    _wait(driver, "#login-form")
    _log_in(driver, key)
    _wait(driver, "#ann-claim").click()


def test_an_annotator_claims_labels_skips_and_flags(dash_app: Flask, tmp_path: Path,
                                                    database_url: str) -> None:
    db = dash_app.extensions["abvoc"].db
    seed_queue(db)
    made = create_key(db, ["annotate"], name="alice")
    who = f"alice:{made['prefix']}"
    db_kind = database_url.split(":")[0].split("+")[0]
    with serve(dash_app) as base, chromium() as driver:
        _claim_first(driver, base, made["key"])

        _until_text(driver, "#ann-summary", "Item #1 in verification")
        image = _wait(driver, "img#ann-input")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", image) == 96
        assert _text(driver, "#ann-served") == EVIL  # shown as text, not markup
        assert _text(driver, "#ann-shadow-0") == "x^{3}"
        assert _text(driver, "#ann-correction") == "x^{2}"
        assert EVIL in _text(driver, "#ann-correction-note")
        assert driver.execute_script("return window.__abvoc_xss === undefined")
        assert not driver.find_elements(By.CSS_SELECTOR, "#ann-view script, #ann-view b b")
        editor = "#ann-editor input"
        assert driver.find_element(By.CSS_SELECTOR, editor).get_attribute("value") == "x^{2}"
        _wait(driver, "#ann-preview-img")

        _type(driver, editor, "\\frac{x")
        _until_text(driver, "#ann-preview-problem", "Not valid LaTeX")
        driver.find_element(By.ID, "ann-submit").click()
        _until_text(driver, "#ann-message", "Not saved: 'label' is not valid LaTeX")
        assert "Item #1 " in _text(driver, "#ann-summary")  # still held

        _type(driver, editor, "\\frac{1}{2}+x^{2}")
        _wait(driver, "#ann-preview-img")
        screenshot(driver, tmp_path / "screenshots", f"annotate-{db_kind}")
        driver.find_element(By.ID, "ann-submit").click()
        _until_text(driver, "#ann-message", "Item #1 labeled (done). Claimed item #2.")
        _until_text(driver, "#ann-summary", "Item #2 in verification")
        assert _text(driver, "#ann-served") == "x^{1}"
        assert _text(driver, "#ann-correction") == "None."

        driver.find_element(By.ID, "ann-skip").click()
        _until_text(driver, "#ann-message", "Item #2 skipped. Claimed item #3.")
        driver.find_element(By.ID, "ann-flag").click()
        _until_text(driver, "#ann-message", "Not saved: 'reason'")
        driver.find_element(By.ID, "ann-reason").send_keys("blurred <b>scan</b>")
        driver.find_element(By.ID, "ann-flag").click()
        _until_text(driver, "#ann-message", "Item #3 flagged. Claimed item #4.")

        # The last item is a class label over tensors: a picker of its classes.
        _until_text(driver, "#ann-input", '"FP32"')
        choices = driver.find_elements(By.CSS_SELECTOR, "#ann-editor input[type=radio]")
        assert len(choices) == 3
        assert "<i>bird</i>" in _text(driver, "#ann-editor")
        choices[0].click()
        driver.find_element(By.ID, "ann-submit").click()
        _until_text(driver, "#ann-message", "Item #4 labeled (done). Nothing left")
        _wait(driver, "#ann-empty")
        assert console_errors(driver) == []

    with db.reading() as s:
        items = {i.prediction_id: i for i in s.scalars(select(RelabelItem))}
        acts = [(a.item_id, a.annotator, a.action, a.label, a.verdict)
                for a in s.scalars(select(RelabelLabel).order_by(RelabelLabel.id))]
    first, second, third, picked = (items[p] for p in ("p-first", "p-second", "p-third",
                                                       "p-class"))
    assert (first.status, first.label, first.annotator) == ("done", "\\frac{1}{2}+x^{2}", who)
    assert (second.status, second.lease_owner) == ("open", None)
    assert (third.status, third.note) == ("flagged", "blurred <b>scan</b>")
    assert (picked.status, picked.label, picked.annotator) == ("done", "cat", who)
    assert acts == [(first.id, who, "label", "\\frac{1}{2}+x^{2}", "reject"),
                    (second.id, who, "skip", None, None), (third.id, who, "flag", None, None),
                    (picked.id, who, "label", "cat", None)]


def test_a_text_item_is_labeled_as_holding_no_text(dash_app: Flask) -> None:
    db = dash_app.extensions["abvoc"].db
    pid = seed_text_item(db)
    made = create_key(db, ["annotate"], name="bob")
    with serve(dash_app) as base, chromium() as driver:
        _claim_first(driver, base, made["key"])
        _until_text(driver, "#ann-summary", "output type text")
        assert _text(driver, "#ann-served") == "STOP"
        _type(driver, "#ann-editor input[type=text]", "")
        driver.find_element(By.ID, "ann-submit").click()
        _until_text(driver, "#ann-message", "tick 'the input holds no text'")
        _wait(driver, "#ann-editor input[type=checkbox]").click()
        driver.find_element(By.ID, "ann-submit").click()
        _until_text(driver, "#ann-message", "labeled (done). Nothing left")
        assert console_errors(driver) == []
    with db.reading() as s:
        item = s.scalars(select(RelabelItem).where(RelabelItem.prediction_id == pid)).one()
    assert (item.status, item.label) == ("done", "")
