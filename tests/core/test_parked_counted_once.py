"""A batch read again counts its parked events once in `abvoc_events_parked_total`.

Found by applying a batch twice, as a worker stopped between its store commit and its offset
commit (or a rebalance) reads it again: the table kept one row per parked record while the
counter added each again, so /metrics said 2 where `abvoc events parked` said 1.
"""

from __future__ import annotations

import json

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from core import events
from core.bus.base import Record
from core.store.db import Database
from core.store.models import ParkedEvent
from core.stream import apply_records
from evaluation.worker import GROUP_ID, apply_events, prepare_events
from tests.support.flow import prediction_event


def _counted(topic: str) -> dict[str, float]:
    return {reason: REGISTRY.get_sample_value(
        "abvoc_events_parked_total", {"topic": topic, "reason": reason}) or 0.0
        for reason in ("not_json", "cannot_apply")}


def test_a_batch_read_again_counts_its_parked_events_once(db: Database) -> None:
    topic = f"once-{db.dialect}.predictions"  # the counter is the process's: a topic of its own
    too_big = json.dumps({**prediction_event(2), "experiment_id": 2**63}).encode()  # no BIGINT
    batch = [Record(topic, 0, 0, "k", b"{not json"), Record(topic, 0, 1, "k", too_big),
             Record(topic, 0, 2, "k", events.encode(prediction_event(3)))]
    before = _counted(topic)
    for _ in range(2):  # the second time: read again before its offsets were committed
        assert apply_records(db, GROUP_ID, batch, apply_events,
                             prepare=prepare_events) in (0, 1)
    with db.reading() as s:
        rows = s.scalar(select(func.count()).select_from(ParkedEvent)
                        .where(ParkedEvent.topic == topic))
    assert rows == 2
    after = _counted(topic)
    assert {k: after[k] - before[k] for k in after} == {"not_json": 1, "cannot_apply": 1}
