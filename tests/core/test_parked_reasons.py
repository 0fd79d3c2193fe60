"""A parked event's reason says what is wrong however large the value it quotes.

Found by sending a PredictionMade with a 3,000,000-character output: the schema's message
quotes the value whole and says what is wrong at its end ('is longer than 10000 characters'),
so the reason kept (its first 2,000 characters), the listing and the log line (500) showed
only the start of the output, never why it was refused.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from core import events
from core.bus.embedded import EmbeddedBus
from core.store.db import Database
from core.store.models import ParkedEvent, Prediction
from evaluation.worker import make_worker
from tests.support.flow import SECRET, drain_worker, prediction_event

HUGE = "x" * 3_000_000
BAD = {  # offset on the embedded log: the event's fields, and how its reason must end
    1: ({"output": HUGE}, "is longer than 10000 characters (3000068 characters)"),
    2: ({"event_type": HUGE}, "; expected one of ['PredictionMade', 'CorrectionSubmitted', "
                              "'OutcomeRecorded']"),
    3: ({"schema_version": [HUGE]}, " for PredictionMade"),
}


def test_a_huge_value_leaves_the_reason_saying_what_is_wrong(db: Database) -> None:
    bus = EmbeddedBus(db, partitions=1)
    stream = [json.dumps({**prediction_event(i), **fields}).encode()
              for i, (fields, _) in BAD.items()]
    bus.producer().send_many([*(("t.predictions", "k", v) for v in stream),
                              ("t.predictions", "k", events.encode(prediction_event(9)))])
    drain_worker(make_worker(db, bus, "t", secret=SECRET))
    with db.reading() as s:
        reasons = dict(s.execute(select(ParkedEvent.offset, ParkedEvent.reason)).all())
        assert set(s.scalars(select(Prediction.prediction_id))) == {"r-9"}
    assert set(reasons) == set(BAD)
    for offset, (_, end) in BAD.items():
        assert reasons[offset].endswith(end) and len(reasons[offset]) <= 500, \
            reasons[offset][-200:]
