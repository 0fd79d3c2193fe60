"""An event whose ids no store holds whole is parked, naming the id, and the stream goes on.

Found by sending such events on Kafka: a PredictionMade whose event_id held a lone surrogate
(JSON's "\\ud800", which the standard library's parser lets through) failed the parking of its
own record, so every round failed and the worker restarted 22 times in 20 s with nothing
applied behind it; on PostgreSQL a NUL in the id did the same, and on SQLite, whose JSON
functions cut text at a NUL, that event was taken as applied before and dropped unparked.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from core import events
from core.bus.embedded import EmbeddedBus
from core.parking import parked_event_id
from core.store.db import Database
from core.store.models import ParkedEvent, Prediction
from evaluation.worker import make_worker
from tests.support.flow import SECRET, drain_worker, prediction_event

BAD = {  # offset on the embedded log (its first is 1): fields no store holds whole, and why
    1: ({"event_id": "0123456789\x00"}, "PredictionMade invalid at event_id: must not contain NUL"),
    2: ({"event_id": "0123456789\ud800"}, "not JSON: no low surrogate in string"),
    3: ({"prediction_id": "r-3\x00"}, "PredictionMade invalid at prediction_id: must not"),
    4: ({"unit_id": "user\x00"}, "PredictionMade invalid at unit_id: must not contain NUL"),
}


def test_ids_no_store_holds_are_parked_and_the_stream_goes_on(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    stream = [json.dumps({**prediction_event(i), **fields}).encode()
              for i, (fields, _) in BAD.items()]
    stream += [events.encode(prediction_event(i)) for i in range(10, 15)]
    bus.producer().send_many(("t.predictions", "k", v) for v in stream)
    drain_worker(make_worker(db, bus, "t", secret=SECRET))  # raised before, round after round
    with db.reading() as s:
        stored = set(s.scalars(select(Prediction.prediction_id)))
        parked = {o: (r, e) for o, r, e in s.execute(
            select(ParkedEvent.offset, ParkedEvent.reason, ParkedEvent.event_id))}
    assert stored == {f"r-{i}" for i in range(10, 15)}
    assert set(parked) == set(BAD)
    for offset, (fields, why) in BAD.items():
        reason, event_id = parked[offset]
        assert reason.startswith(why), reason
        assert event_id == (None if "event_id" in fields else json.loads(stream[offset - 1])[
            "event_id"])


def test_a_payload_names_no_id_that_a_store_cannot_hold() -> None:
    for bad in ("e-1\x00", "e-1\ud800"):
        assert parked_event_id(json.dumps({"event_id": bad}).encode()) is None
