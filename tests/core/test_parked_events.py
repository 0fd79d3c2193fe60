"""Parked events are counted, listed, and replayed through the worker's own apply path.

Found in an operator run: a worker started with another ABVOC_SECRET_KEY than the API's parked
194 corrections that had been accepted, and nothing but the table showed it; nor could they be
applied once the key was right.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.cli import main
from core import events
from core.bus.base import Record
from core.bus.embedded import EmbeddedBus
from core.health import component_checks
from core.parking import park
from core.replay import replay_parked
from core.store.db import Database
from core.store.models import Correction, ParkedEvent
from evaluation.worker import GROUP_ID, make_worker
from tests.support.flow import SECRET, correction_event, drain_worker, prediction_event

N = 6


def _parked_metric(topic: str, reason: str) -> float:
    return REGISTRY.get_sample_value("abvoc_events_parked_total",
                                     {"topic": topic, "reason": reason}) or 0.0


def _count(db: Database, model: type) -> int:
    with db.reading() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _park_with_wrong_key(db: Database, key: str = "not-the-api-key",
                         ) -> tuple[EmbeddedBus, list[bytes]]:
    """Predictions 0..N-1 and their corrections, read by a worker with another key; the bus
    and what was sent on it."""
    bus = EmbeddedBus(db, partitions=1)
    stream = [events.encode(prediction_event(i)) for i in range(N)]
    stream += [events.encode(correction_event(i)) for i in range(N)]
    bus.producer().send_many(("t.predictions" if i < N else "t.corrections", "k", v)
                             for i, v in enumerate(stream))
    drain_worker(make_worker(db, bus, "t", secret=key))
    return bus, stream


def test_a_worker_parking_most_receipts_says_so_in_its_heartbeat(db: Database) -> None:
    """A worker with another ABVOC_SECRET_KEY parked every correction and outcome while
    /readyz said ok: its loop ran well. The receipt alarm now notes it in the heartbeat, until
    most receipts verify again."""
    bus = EmbeddedBus(db, partitions=1)
    wrong = make_worker(db, bus, "t", secret="not-the-api-key")
    heartbeat = wrong.supervisor.heartbeat
    assert heartbeat is not None
    for i in range(N):  # one correction a batch: too few to judge alone, judged together
        bus.producer().send_many([("t.predictions", "k", events.encode(prediction_event(i))),
                                  ("t.corrections", "k", events.encode(correction_event(i)))])
        drain_worker(wrong)
        assert (heartbeat.note is None) == (i < 4), (i, heartbeat.note)
    assert heartbeat.note.startswith("parks most of what it reads for lack of a valid receipt "
                                     "(5 of 5 records lately, from t.corrections)")
    heartbeat.beat()
    verdict = component_checks(db)["worker"]
    assert verdict.startswith("parking: 1 of 1 instances: parks most") and \
        "ABVOC_SECRET_KEY probably differs" in verdict
    # Valid receipts again (a forged one among them): the note goes once judged.
    wrong.receipts.check([Record("t.corrections", 0, i, "k", b"") for i in range(6)],
                         [(Record("t.corrections", 0, 0, "k", b""), "no valid receipt")])
    assert heartbeat.note is None
    heartbeat.beat()
    assert component_checks(db)["worker"] == "ok"


def test_a_wrong_key_is_counted_said_once_and_replayed_once_fixed(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    before = _parked_metric("t.corrections", "receipt")
    with caplog.at_level(logging.WARNING):
        bus, stream = _park_with_wrong_key(db)
    assert _count(db, ParkedEvent) == N and _count(db, Correction) == 0
    assert _parked_metric("t.corrections", "receipt") - before == N
    hints = [r for r in caplog.records if "ABVOC_SECRET_KEY probably differs" in r.getMessage()]
    assert len(hints) == 1, [r.getMessage() for r in caplog.records]

    # Replayed with the same wrong key: nothing applied, every row stays with its reason.
    wrong = replay_parked(db, make_worker(db, bus, "t", secret="still-wrong"))
    assert wrong["still_parked"] == N and wrong["applied"] == 0
    assert _count(db, ParkedEvent) == N
    assert _parked_metric("t.corrections", "receipt") - before == N  # a replay parks nothing new

    right = make_worker(db, bus, "t", secret=SECRET)
    assert replay_parked(db, right, reason_contains="receipt")["applied"] == N
    assert _count(db, ParkedEvent) == 0 and _count(db, Correction) == N
    assert replay_parked(db, right)["replayed"] == 0

    # The same event parked again (a second copy on the bus): replaying it counts nothing.
    with db.session() as s:
        park(s, GROUP_ID, Record("t.corrections", 0, 10**9, "k", stream[N]),
             "carries no valid receipt")
    again = replay_parked(db, right)
    assert again == {"replayed": 1, "applied": 0, "already_applied": 1, "still_parked": 0,
                     "truncated": 0}
    assert _count(db, ParkedEvent) == 0 and _count(db, Correction) == N


def test_the_events_commands_list_and_replay(db: Database, database_url: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _, payloads = _park_with_wrong_key(db)
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_TOPIC_PREFIX", "t")
    monkeypatch.setenv("ABVOC_SECRET_KEY", SECRET)
    monkeypatch.delenv("ABVOC_BUS_URL", raising=False)
    listed = CliRunner().invoke(main, ["events", "parked", "--limit", "2", "--json"])
    assert listed.exit_code == 0, listed.output
    out = json.loads(listed.output)
    assert out["counts"] == [{"group_id": GROUP_ID, "topic": "t.corrections",
                              "reason": "receipt", "count": N}]
    assert len(out["newest"]) == 2 and "no valid receipt" in out["newest"][0]["reason"]
    assert out["newest"][0]["created_at"].endswith("+00:00")  # ISO 8601 with its offset
    event_id = out["newest"][0]["event_id"]
    assert event_id and event_id in {json.loads(p)["event_id"] for p in payloads}
    human = CliRunner().invoke(main, ["events", "parked"])
    assert f"{N} parked events" in human.output and "receipt" in human.output
    assert f"event {event_id}: " in human.output

    # A reason filter that matches nothing is said so (as --topic and --id are), not "replayed 0".
    typo = CliRunner().invoke(main, ["events", "replay", "--reason-contains", "reciept"])
    assert typo.exit_code == 2 and "no parked event's reason contains 'reciept'" in typo.output
    assert _count(db, ParkedEvent) == N
    first_id = out["newest"][-1]["id"]
    one = CliRunner().invoke(main, ["events", "replay", "--id", str(first_id), "--json"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["applied"] == 1
    rest = CliRunner().invoke(main, ["events", "replay", "--topic", "t.corrections",
                                     "--reason-contains", "receipt"])
    assert rest.exit_code == 0, rest.output
    assert f"applied {N - 1}" in rest.output
    assert _count(db, ParkedEvent) == 0 and _count(db, Correction) == N
    gone = CliRunner().invoke(main, ["events", "replay", "--id", str(first_id)])
    assert gone.exit_code == 2 and f"no parked event has id {first_id}" in gone.output
