"""A correction sent without an Idempotency-Key is the earlier one with its body, keyed or not,
also when the two race: checked only before the write, a keyless repeat racing the keyed
original was stored after it as a second correction (four races in five against `abvoc up` with
two API processes), where sent after it, it is told it is that one. (A keyed request is found by
its key alone, so one sent after a keyless one of its body is a new correction, racing or not.)"""

from __future__ import annotations

from sqlalchemy import func, select

from core import receipts
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.models import CorrectionRequest, OutboxEvent, ServedPrediction
from feedback.corrections import submit_correction
from tests.support.race import databases, race

TRIALS = 8
CALLER = 7  # the id of the API key that sent the keyed request


def test_a_keyless_repeat_racing_the_keyed_original_is_that_correction(
        db: Database, database_url: str, settings: Settings) -> None:
    bodies = []
    with db.session() as s:
        for i in range(TRIALS):
            pid = f"p{i}"
            s.add(ServedPrediction(prediction_id=pid, candidate="cand-a", arm="control",
                                   experiment_id=1, created_at=utcnow()))
            bodies.append({"prediction_id": pid, "corrected_output": "x^{2}",
                           "receipt": receipts.sign(settings.secret_key.reveal(), pid)})
    stored = 0
    with databases(database_url, 2) as dbs:
        for i, body in enumerate(bodies):
            keyed, keyless = race(dbs, [
                lambda d, b=body, i=i: submit_correction(d, settings, b, f"order-{i}",
                                                         caller=CALLER),
                lambda d, b=body: submit_correction(d, settings, b)])
            assert not isinstance(keyed, Exception), keyed
            assert not isinstance(keyless, Exception), keyless
            if keyless["duplicate"]:  # the keyed one came first: the keyless is it
                assert keyless == {**keyed, "duplicate": True}, (keyed, keyless)
            else:  # the keyless one came first; a new key is a new correction, as in turn
                assert keyed["correction_id"] != keyless["correction_id"]
                assert (keyless["earlier_corrections"], keyed["earlier_corrections"]) == (0, 1), \
                    f"a keyless repeat stored after the keyed original: {keyed}, {keyless}"
            stored += 1 if keyless["duplicate"] else 2
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(CorrectionRequest)) == stored
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == stored
