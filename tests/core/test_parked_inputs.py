"""Input retention keeps the input of a prediction a parked event names: the corrections a
worker with the wrong ABVOC_SECRET_KEY parked are replayed once the key is fixed, often after
the input retention (a weekend past 72 hours), and each makes a verification item that is only
offered with its input. The prune deleted those inputs, so every replayed correction's item was
counted `without_input` and never offered."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core import events
from core.bus.embedded import EmbeddedBus
from core.replay import replay_parked
from core.store.db import Database, utcnow
from core.store.models import ParkedEvent, PredictionInput
from core.store.retention import prune_inputs
from evaluation.worker import make_worker
from feedback.annotation import queue_figures
from tests.support.flow import SECRET, correction_event, drain_worker, prediction_event
from tests.support.kept_inputs import keep_input

N = 3


def test_a_parked_correction_keeps_its_predictions_input(db: Database) -> None:
    old = utcnow() - timedelta(hours=80)
    with db.session() as s:  # served 80 hours ago, past the 72 hours' input retention
        for i in range(N + 1):
            keep_input(s, f"r-{i}", f"{i:016x}", kind="image", created_at=old)
    bus = EmbeddedBus(db, partitions=1)
    sent = [("t.predictions", "k", events.encode(prediction_event(i))) for i in range(N + 1)]
    sent += [("t.corrections", "k", events.encode(correction_event(i))) for i in range(N)]
    bus.producer().send_many(sent)
    drain_worker(make_worker(db, bus, "t", secret="not-the-api-key"))  # parks every correction
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(ParkedEvent)) == N

    assert prune_inputs(db, 72) == 1  # prediction N: no correction names it
    with db.reading() as s:
        assert set(s.scalars(select(PredictionInput.prediction_id))) == \
            {f"r-{i}" for i in range(N)}

    assert replay_parked(db, make_worker(db, bus, "t", secret=SECRET))["applied"] == N
    queues = {q["queue"]: q for q in queue_figures(db)["queues"]}
    assert queues["verification"]["open"] == N
    assert queues["verification"]["without_input"] == 0
    # Replayed, the corrections park nothing: their items hold the inputs from now on.
    assert prune_inputs(db, 72) == 0
