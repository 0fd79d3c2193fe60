"""The Relabeling page: queue sizes by status, annotations per day and agreement from the store,
rendered in a real headless Chromium behind the login (a screenshot is saved)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask

from core.store.db import utcnow
from core.store.models import RelabelItem
from core.store.relabel_models import RelabelLabel
from dashboards import relabeling
from tests.dashboards.test_dashboard_browser import _log_in, _text, _wait
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.clock import wall_clock
from tests.support.live import serve


def _seed(app: Flask) -> datetime:
    """Five verification items (two done, each labeled twice, agreeing; one open; two leased)
    and three audit items (one done); returns the time of the labels (one of them a day
    earlier)."""
    now = utcnow()
    db = app.extensions["abvoc"].db
    with db.session() as s:
        specs = [("verification", "done")] * 2 + [("verification", "open")] \
            + [("verification", "leased")] * 2 + [("offline-test", "done")] \
            + [("offline-test", "open")] * 2
        items = [RelabelItem(queue=q, prediction_id=f"p{i}", status=st, created_at=now,
                             input_hash=f"h{i}", lease_until=now + timedelta(minutes=5)
                             if st == "leased" else None)
                 for i, (q, st) in enumerate(specs)]
        s.add_all(items)
        s.flush()
        for item in (items[0], items[1]):
            for who in ("ann-a", "ann-b"):
                s.add(RelabelLabel(item_id=item.id, annotator=who, action="label",
                                   label="x^{2}", verdict="accept", created_at=now))
        s.add(RelabelLabel(item_id=items[5].id, annotator="ann-a", action="label", label="3",
                           created_at=now - timedelta(days=1)))
        s.add(RelabelLabel(item_id=items[6].id, annotator="ann-a", action="skip",
                           created_at=now))
    return now


def _day(moment: datetime) -> str:
    """The day (UTC) the throughput chart files a moment under."""
    return moment.strftime("%Y-%m-%d")


def test_figures_from_the_store(dash_app: Flask) -> None:
    labeled = _seed(dash_app)
    with wall_clock() as span:  # the chart ends on the day its own clock reads
        figures = relabeling.overview(dash_app.extensions["abvoc"].db)
    queues = {q["queue"]: q for q in figures["queues"]}
    assert (queues["verification"]["items"], queues["verification"]["done"],
            queues["verification"]["leased"], queues["verification"]["open"]) == (5, 2, 2, 1)
    assert (queues["offline-test"]["items"], queues["offline-test"]["done"]) == (3, 1)
    days = figures["throughput"]
    assert len(days) == relabeling.DAYS and days[-1][0] in span.of(_day)
    # By the labels' own days: the chart read after midnight UTC has them a day further back.
    by_day = {day: counts for day, *counts in days}
    assert by_day[_day(labeled)] == [4, 1] and by_day[_day(labeled - timedelta(days=1))][0] == 1
    assert sum(labels + other for _, labels, other in days) == 6
    assert figures["agreement"]["items_with_two_labels"] == 2
    assert figures["agreement"]["exact_agreement"] == 1.0


def test_the_page_in_a_browser(dash_app: Flask, admin_key: str, tmp_path: Path) -> None:
    _seed(dash_app)
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/relabeling")
        _wait(driver, "#login-form")
        _log_in(driver, admin_key)
        _wait(driver, "#relabel-queues")
        table = _text(driver, "#relabel-queues")
        assert "verification" in table and "offline-test" in table
        _wait(driver, "#relabel-throughput .main-svg")
        assert "exact agreement 1" in _text(driver, "#relabel-agreement")
        screenshot(driver, tmp_path / "screenshots", "relabeling")
        assert console_errors(driver) == []


def test_no_annotations_say_so_and_the_queue_headers_are_words() -> None:
    # The chart was an empty two-week plot on a -1..1 axis, the headers `leases_expired`,
    # `without_input`.
    from dashboards.pages import relabeling as page

    quiet = page._throughput([(f"2026-11-{d:02d}", 0, 0) for d in range(1, 15)])
    assert quiet.layout.annotations[0].text.startswith("No annotations in the last two weeks")
    assert not quiet.data
    busy = page._throughput([("2026-11-01", 2, 1)])
    assert [bar.name for bar in busy.data] == ["labels", "skips and flags"]
    headers = page._queues([{"queue": "verification", "items": 1}]).children[0].children
    assert "leases expired" in str(headers) and "_" not in str(headers)
