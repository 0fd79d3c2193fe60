"""Input retention keeps the inputs a correction not yet applied may need: while the bus is down
(its outbox row unsent) or the worker stopped (its record unread on the embedded log), the
prune went on deleting inputs by age alone, so every correction the worker applied after more
than ABVOC_INPUT_RETENTION_HOURS made a verification item that was never offered."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.store.db import Database, utcnow
from core.store.models import BusRecord, ConsumerOffset, OutboxEvent, PredictionInput
from core.store.retention import prune_inputs
from tests.support.kept_inputs import keep_input

H = timedelta(hours=1)


def _kept(db: Database) -> set[str]:
    with db.reading() as s:
        return set(s.scalars(select(PredictionInput.prediction_id)))


def test_inputs_stay_while_an_event_accepted_within_their_retention_waits(db: Database) -> None:
    now = utcnow()
    with db.session() as s:
        for pid, age in (("p-old", 100), ("p-corrected", 80), ("p-new", 1)):
            keep_input(s, pid, f"h-{pid}", kind="image", created_at=now - age * H)
        # The correction of p-corrected, accepted 10 hours ago (70 after its prediction), unsent.
        s.add(OutboxEvent(event_id="c1", topic="t.corrections", key="p-corrected",
                          payload=b"{}", created_at=now - 10 * H, attempts=3))
    assert prune_inputs(db, 72, now=now) == 1
    assert _kept(db) == {"p-corrected", "p-new"}

    # Relayed to the embedded log, which the worker has not read yet: still needed.
    with db.session() as s:
        s.get(OutboxEvent, 1).sent_at = now - 9 * H
        s.add(BusRecord(id=1, topic="t.corrections", partition=0, key="p-corrected",
                        value=b"{}", created_at=now - 9 * H))
        s.add(ConsumerOffset(group_id="evaluation", topic="t.corrections", partition=0,
                             next_offset=1, updated_at=now))
    assert prune_inputs(db, 72, now=now) == 0
    # Read (and so applied): the input goes unless the item it made holds it.
    with db.session() as s:
        s.get(ConsumerOffset, ("evaluation", "t.corrections", 0)).next_offset = 2
    assert prune_inputs(db, 72, now=now) == 1
    assert _kept(db) == {"p-new"}
