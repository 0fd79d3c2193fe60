"""The weekly report's "running, no traffic this week" list at the week's end: an experiment
created during the week but started only after it ended (Monday 00:20 UTC, before the report is
due at 06:00) was not running in that week, so its silence there is no stalled rollout. The
list read the experiment's creation time as its start, and flagged it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.store.db import Database
from core.store.models import Experiment, RelabelItem
from evaluation.weekly import relabel_week, week_bounds, weekly_data
from tests.evaluation.helpers import add_experiment

WEEK = "2026-W47"  # Monday 2026-11-16 .. Monday 2026-11-23 00:00 UTC


def _experiment(db: Database, name: str, created: datetime, started: datetime | None) -> int:
    exp = add_experiment(db, name=name, scope=f"scope-{name}")
    with db.session() as s:
        row = s.get(Experiment, exp)
        row.created_at, row.started_at = created, started
    return exp


def test_an_experiment_started_after_the_week_is_not_flagged_in_it(db: Database) -> None:
    since, end = week_bounds(WEEK)
    friday = since + timedelta(days=4, hours=15)
    # Created on the Friday, started in the next week's first hour (and on its first instant).
    late = _experiment(db, "started monday", friday, end + timedelta(minutes=20))
    on_the_end = _experiment(db, "started at the end", friday, end)
    # Started in the week's last microsecond: running in the week, and silent.
    idle = _experiment(db, "idle", friday, end - timedelta(microseconds=1))
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # when the week's report is due
    with db.reading() as s:
        data = weekly_data(s, WEEK, now=now)
    flagged = [e["id"] for e in data["no_traffic"]]
    assert late not in flagged and on_the_end not in flagged, data["no_traffic"]
    assert flagged == [idle]


def test_a_running_experiment_that_never_recorded_its_start_is_read_by_its_creation(
        db: Database) -> None:
    """A row without `started_at` (hand-written, or from before it was set) still counts from
    its creation, as before."""
    since, end = week_bounds(WEEK)
    before = _experiment(db, "undated", since + timedelta(days=1), None)
    _experiment(db, "undated later", end + timedelta(hours=1), None)  # after the week: not it
    with db.reading() as s:
        data = weekly_data(s, WEEK, now=end + timedelta(hours=6))
    assert [e["id"] for e in data["no_traffic"]] == [before]


def test_an_item_dropped_from_its_queue_is_open_only_until_it_was_dropped(
        db: Database) -> None:
    """A full queue drops its weakest open items for stronger ones; a dropped item gets no
    label, and the report counted it as open at the end of every week after."""
    since, end = week_bounds(WEEK)
    monday = since + timedelta(hours=9)
    with db.session() as s:
        for i, (status, dropped) in enumerate([
                ("open", None),                                # open at the end
                ("leased", None),                              # held, still unlabeled
                ("dropped", monday + timedelta(days=2)),       # dropped within the week
                ("dropped", end + timedelta(hours=3)),         # open at the end, dropped later
                ("dropped", None)]):                           # dropped before dropped_at
            s.add(RelabelItem(queue="default", prediction_id=f"p{i}", status=status,
                              created_at=monday, dropped_at=dropped))
    with db.reading() as s:
        assert relabel_week(s, since, end)["open_at_end"] == 3
