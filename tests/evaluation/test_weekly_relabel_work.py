"""The weekly relabeling throughput counts annotators' work: an item is queued when the rules
queued it from traffic and labeled when an annotator labeled it. The stage item that
route_label made from another item's verified label was counted as queued and as labeled
(nobody did either), and a resolution that settled an item labeled in an earlier week moved
it into the resolution's week."""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database, utcnow
from core.store.models import RelabelItem, RelabelLabel
from evaluation.relabel_enqueue import route_label
from evaluation.weekly import relabel_week, week_bounds
from feedback import annotation
from tests.evaluation.helpers import T0, apply, correction, prediction
from tests.evaluation.test_relabel_enqueue import rules
from tests.feedback.test_cross_queue import _label, _one_input_in_two_queues
from tests.feedback.test_label_time_boundaries import END, SINCE, Ticking, clock  # noqa: F401
from tests.support.kept_inputs import keep_input

STAGES = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
          "recognizer": {"classes": ["x", "2"]},
          "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}


def _labeled_and_routed(db: Database, queue: str) -> None:
    item = annotation.claim(db, "ann", queue=queue)
    assert item is not None
    assert annotation.submit(db, item["id"], "ann", "y^{2}")["status"] == "done"
    with db.session() as s:
        assert route_label(s, item["id"]) == "stage:recognizer"


def test_stage_copies_are_neither_queued_nor_labeled(db: Database) -> None:
    rules(db, audit_rate=1.0)
    audited = prediction("o1", output="x^{2}", stages=STAGES)  # audited, labeled, copied
    corrected = prediction("o2", output="x^{2}", stages=STAGES)  # corrected: a stage item too
    with db.session() as s:
        for p in (audited, corrected):
            keep_input(s, p["prediction_id"], p["input_hash"], kind="image")
    apply(db, [audited])
    _labeled_and_routed(db, "offline-test")  # makes o1's stage item: a copy
    apply(db, [corrected, correction("o2", "y^{2}")])
    _labeled_and_routed(db, "verification")  # labels o2's queued stage item by routing
    now = utcnow()
    with db.reading() as s:
        week = relabel_week(s, now - timedelta(hours=1), now + timedelta(hours=1))
    # Queued: o1's audit item, o2's audit, verification and stage items; labeled: the two an
    # annotator labeled; o1's stage item was made done from its label.
    assert (week["queued"], week["labeled"]) == (4, 2), week
    assert week["copied"] == 1
    assert week["annotators"] == 1 and week["open_at_end"] == 1  # o2's audit item
    assert sum(d["queued"] for d in week["days"]) == 4
    assert sum(d["labeled"] for d in week["days"]) == 2


def test_a_settled_item_stays_labeled_in_the_week_its_annotator_labeled_it(
        db: Database, clock: Ticking) -> None:  # noqa: F811
    first, second = _one_input_in_two_queues(db)
    assert _label(db, first, "dog")["status"] == "done"
    assert _label(db, second, "owl")["status"] == "review"
    clock.at = END + timedelta(days=1)  # the admin resolves it in the next week
    assert annotation.resolve(db, second, "admin", "owl")["settled"] == [first]
    with db.reading() as s:
        this = relabel_week(s, SINCE, END)
        following = relabel_week(s, END, END + timedelta(days=7))
    assert this["labeled"] == 2  # both items, labeled by their annotator in this week
    assert following["labeled"] == 0 and following["annotators"] == 1  # the admin


def test_annotators_are_people_not_combinations_of_them(db: Database) -> None:
    """Items done by two annotators name both ("alice,bob"); the week counts people, from the
    label rows of the week (labels and resolutions; a skip labels nothing)."""
    since, until = week_bounds("2026-W47")  # T0 is Friday 2026-11-20
    acts = [("alice,bob", [("alice", "label"), ("bob", "label")]),
            ("alice", [("alice", "label")]),
            ("bob", [("bob", "label"), ("dave", "skip")]),
            ("admin", [("carol", "label"), ("erin", "label"), ("admin", "resolve")])]
    with db.session() as s:
        for i, (names, rows) in enumerate(acts):
            item = RelabelItem(queue="verification", prediction_id=f"w{i}", status="done",
                               label="x", annotator=names, created_at=T0, labeled_at=T0)
            s.add(item)
            s.flush()
            for who, action in rows:
                s.add(RelabelLabel(item_id=item.id, annotator=who, action=action,
                                   label=None if action == "skip" else "x", created_at=T0))
        # a label from the week before is not this week's
        s.add(RelabelLabel(item_id=item.id, annotator="frank", action="label", label="x",
                           created_at=T0 - timedelta(days=7)))
    with db.reading() as s:
        week = relabel_week(s, since, until)
    assert week["labeled"] == 4
    assert week["annotators"] == 5  # alice, bob, carol, erin, admin



def test_a_window_across_midnight_has_both_days(db: Database, clock: Ticking) -> None:  # noqa: F811
    """A window of the last hours that does not begin at midnight: its days began at its first
    day's time of day, and the day after midnight was left out with its work."""
    clock.at = SINCE + timedelta(days=2, minutes=30)  # 00:30
    first, _ = _one_input_in_two_queues(db)
    assert _label(db, first, "dog")["status"] == "done"
    with db.reading() as s:
        week = relabel_week(s, clock.at - timedelta(hours=1), clock.at + timedelta(hours=1))
    assert week["labeled"] == 1
    assert [d["day"] for d in week["days"]] == [
        (SINCE + timedelta(days=d)).date().isoformat() for d in (1, 2)]
    assert [d["labeled"] for d in week["days"]] == [0, 1]
