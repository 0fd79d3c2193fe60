"""Racing corrections of one prediction are told how many came before each, in the order the
stream holds them (its first is the prediction's truth), and a repeat is told the same again:
timed before they took turns, two racing corrections were each told none came before."""

from __future__ import annotations

import json

from sqlalchemy import select

from core import receipts
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.models import OutboxEvent, ServedPrediction
from feedback.corrections import submit_correction
from tests.support.race import databases, race

N = 8


def test_racing_corrections_count_the_ones_before_them_as_the_stream_orders_them(
        db: Database, database_url: str, settings: Settings) -> None:
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="p1", candidate="cand-a", arm="control",
                               experiment_id=1, created_at=utcnow()))
    receipt = receipts.sign(settings.secret_key.reveal(), "p1")

    def body(i: int) -> dict:
        return {"prediction_id": "p1", "receipt": receipt, "corrected_output": f"x^{{{i}}}"}

    with databases(database_url, N) as dbs:
        answers = race(dbs, [lambda d, i=i: submit_correction(d, settings, body(i))
                             for i in range(N)])
    assert not [a for a in answers if isinstance(a, Exception)], answers
    told = {a["correction_id"]: a["earlier_corrections"] for a in answers}
    assert sorted(told.values()) == list(range(N))
    with db.reading() as s:
        stream = [json.loads(e.payload)["correction_id"] for e in s.scalars(
            select(OutboxEvent).order_by(OutboxEvent.id))]
    assert [told[c] for c in stream] == list(range(N))  # the stream's first was told 0
    for i, a in enumerate(answers):  # a repeat is told what the first answer said
        assert submit_correction(db, settings, body(i))["earlier_corrections"] == \
            a["earlier_corrections"]
