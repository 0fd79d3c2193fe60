"""A label and the item it concludes carry one time. The label row's `created_at` and the item's
`labeled_at` were two readings of the clock, a few statements apart; at the end of a week (or a
day) they fell on either side of it, and the weekly report counted the item relabeled in the
next week but its annotator in this one ("0 labeled by 1 annotator", then "1 labeled by 0
annotators"). The clock is pinned here: each reading is a microsecond after the last."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.store.db import Database
from core.store.models import RelabelItem
from core.store.relabel_models import RelabelLabel
from core.times import as_utc
from evaluation.weekly import relabel_week, week_bounds
from feedback import annotation, cross_queue
from tests.feedback.test_cross_queue import _label, _one_input_in_two_queues
from tests.feedback.test_relabel_annotation import add_items

WEEK = "2026-W53"  # Monday 2026-12-28 .. Monday 2027-01-04 00:00 UTC (an ISO year's last week)
SINCE, END = week_bounds(WEEK)


class Ticking:
    """A clock whose every reading is one microsecond after the one before."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        now, self.at = self.at, self.at + timedelta(microseconds=1)
        return now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Ticking:
    ticking = Ticking(SINCE + timedelta(days=2))
    monkeypatch.setattr(annotation, "utcnow", ticking)
    monkeypatch.setattr(cross_queue, "utcnow", ticking)
    return ticking


def _times(db: Database, item_id: int, action: str) -> tuple[datetime, datetime]:
    """The newest `action` label row's time and the item's `labeled_at`, in UTC."""
    with db.reading() as s:
        given = s.scalars(select(RelabelLabel.created_at).where(
            RelabelLabel.item_id == item_id, RelabelLabel.action == action)
            .order_by(RelabelLabel.id.desc()).limit(1)).one()
        labeled = s.get(RelabelItem, item_id).labeled_at
    return as_utc(given), as_utc(labeled)


def _week(db: Database, since: datetime, until: datetime) -> tuple[int, int]:
    with db.reading() as s:
        week = relabel_week(s, since, until)
    return week["labeled"], week["annotators"]


def test_a_label_given_in_the_week_s_last_microsecond_is_the_week_s(
        db: Database, clock: Ticking) -> None:
    (item,) = add_items(db, 1)
    clock.at = END - timedelta(minutes=5)  # claimed five minutes before the week ends
    claimed = annotation.claim(db, "alice")
    assert claimed is not None and claimed["id"] == item
    # submit reads the clock twice for the lease, then for the label: given at END - 1µs.
    clock.at = END - timedelta(microseconds=3)
    assert annotation.submit(db, item, "alice", "dog")["status"] == "done"
    given, labeled = _times(db, item, "label")
    assert given == labeled, (given, labeled)
    # One item relabeled by one annotator, in the week the label was given; none in the other.
    this, other = (SINCE, END), (END, END + timedelta(days=7))
    if given >= END:
        this, other = other, this
    assert _week(db, *this) == (1, 1) and _week(db, *other) == (0, 0)


def test_a_resolution_at_the_week_s_end_and_what_it_settles_are_the_week_s(
        db: Database, clock: Ticking) -> None:
    first, second = _one_input_in_two_queues(db)
    assert _label(db, first, "dog")["status"] == "done"
    assert _label(db, second, "owl")["status"] == "review"
    clock.at = END - timedelta(microseconds=1)  # the admin resolves in the week's last instant
    assert annotation.resolve(db, second, "admin", "owl")["settled"] == [first]
    for item in (second, first):
        given, labeled = _times(db, item, "resolve")
        assert given == labeled == END - timedelta(microseconds=1), (item, given, labeled)
    assert _week(db, END, END + timedelta(days=7)) == (0, 0)
