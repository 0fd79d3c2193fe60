"""The fault campaign's audit: accepted ids against applied ids, as sets, and the replays seen.

Accepted: every outbox row (an event the API committed) and every id an API response carried.
Applied: the evaluation group's `processed_events` and the evaluation tables (predictions,
corrections). Replays are counted twice over: records the bus holds beyond one per event (the
relay published them again), and event ids the workers were handed again after applying them
(a trigger on `processed_events`, installed by :func:`install_claims_log` in the campaign's own
database, logs every claim attempt, including those ON CONFLICT DO NOTHING absorbs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text

from core.store.db import Database
from core.store.models import (
    Correction,
    OnlineAggregate,
    OutboxEvent,
    Prediction,
    PredictionTruth,
    ProcessedEvent,
)

GROUP_ID = "evaluation"
CLAIMS_LOG = """
CREATE TABLE campaign_claims (event_id text NOT NULL, group_id text NOT NULL);
CREATE FUNCTION campaign_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_claims VALUES (NEW.event_id, NEW.group_id);
    RETURN NEW;
END $$;
CREATE TRIGGER campaign_claim BEFORE INSERT ON processed_events
    FOR EACH ROW EXECUTE FUNCTION campaign_claim();
"""


def install_claims_log(db: Database) -> None:
    """Log every claim of an event id, kept or absorbed (a BEFORE trigger sees both)."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(CLAIMS_LOG)


@dataclass
class Audit:
    accepted_events: int = 0
    applied_events: int = 0
    lost_events: set[str] = field(default_factory=set)
    extra_events: set[str] = field(default_factory=set)
    response_predictions: int = 0
    response_corrections: int = 0
    lost_predictions: set[str] = field(default_factory=set)
    lost_corrections: set[str] = field(default_factory=set)
    tables_unlike_processed: int = 0
    unanswered: int = 0
    duplicated_predictions: int = 0
    duplicated_truths: int = 0
    bus_records: int = 0
    redelivered: int = 0

    @property
    def lost(self) -> int:
        """Accepted events not applied (the answered ids are checked apart, in `unstored`)."""
        return len(self.lost_events) + self.tables_unlike_processed

    @property
    def unstored(self) -> int:
        """Ids the API answered with that the evaluation tables lack."""
        return len(self.lost_predictions) + len(self.lost_corrections)

    @property
    def duplicated(self) -> int:
        return (len(self.extra_events) + abs(self.duplicated_predictions)
                + abs(self.duplicated_truths))

    @property
    def republished(self) -> int:
        """Records beyond one per event (exact once the outbox has drained)."""
        return max(0, self.bus_records - self.accepted_events)

    def lines(self) -> list[str]:
        return [
            f"events accepted (outbox)            {self.accepted_events}",
            f"  of which API responses            {self.response_predictions} predictions, "
            f"{self.response_corrections} corrections",
            f"  committed, caller got an error    {self.unanswered} (applied like the rest)",
            f"events applied (processed_events)   {self.applied_events}",
            f"replayed: published again by relay  {self.republished} "
            f"(bus holds {self.bus_records} records)",
            f"replayed: handed to workers again   {self.redelivered} (absorbed by event id)",
            f"lost                                {self.lost}",
            f"  answered ids missing from tables  {self.unstored}",
            f"duplicated                          {self.duplicated}",
        ]


def read_ledger(folder: Path) -> tuple[set[str], set[str]]:
    """(prediction ids, correction ids) from the Locust ledgers."""
    predictions: set[str] = set()
    corrections: set[str] = set()
    for path in sorted(folder.glob("accepted-*.txt")):
        for line in path.read_text().splitlines():
            kind, _, ident = line.partition(" ")
            (predictions if kind == "p" else corrections).add(ident)
    return predictions, corrections


def bus_records(bootstrap: str, topics: list[str]) -> int:
    """Records the bus holds on `topics` (fresh topics, so the end offsets sum them)."""
    # Imported here: kafka-python warns as it loads, and the audit's store reads need none of it.
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    try:
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def pending(db: Database) -> tuple[int, int]:
    """(outbox rows not yet sent, events accepted but not yet applied)."""
    with db.session() as s:
        unsent = s.scalar(select(func.count()).select_from(OutboxEvent)
                          .where(OutboxEvent.sent_at.is_(None))) or 0
        accepted = s.scalar(select(func.count()).select_from(OutboxEvent)) or 0
        applied = s.scalar(select(func.count()).select_from(ProcessedEvent)
                           .where(ProcessedEvent.group_id == GROUP_ID)) or 0
    return unsent, accepted - applied


def _metric_total(s, metric: str) -> int:  # noqa: ANN001 - a Session
    return int(s.scalar(select(func.coalesce(func.sum(OnlineAggregate.n), 0))
                        .where(OnlineAggregate.metric == metric)))


def audit(db: Database, folder: Path, bootstrap: str, topics: list[str]) -> Audit:
    response_p, response_c = read_ledger(folder)
    with db.session() as s:
        outbox = set(s.scalars(select(OutboxEvent.event_id)))
        processed = set(s.scalars(select(ProcessedEvent.event_id)
                                  .where(ProcessedEvent.group_id == GROUP_ID)))
        stored_p = dict(s.execute(select(Prediction.prediction_id, Prediction.event_id)).all())
        stored_c = dict(s.execute(select(Correction.correction_id, Correction.event_id)).all())
        truths = s.scalar(select(func.count()).select_from(PredictionTruth)) or 0
        counted_p = _metric_total(s, "predictions")
        counted_truths = _metric_total(s, "corrected")
        claims, claimed = s.execute(text(
            "SELECT count(*), count(DISTINCT event_id) FROM campaign_claims "
            "WHERE group_id = :g"), {"g": GROUP_ID}).one()
    table_events = set(stored_p.values()) | set(stored_c.values())
    return Audit(
        accepted_events=len(outbox),
        applied_events=len(processed),
        lost_events=outbox - processed,
        extra_events=processed - outbox,
        unanswered=len(outbox) - len(response_p) - len(response_c),
        response_predictions=len(response_p),
        response_corrections=len(response_c),
        lost_predictions=response_p - set(stored_p),
        lost_corrections=response_c - set(stored_c),
        tables_unlike_processed=len(table_events ^ processed),
        duplicated_predictions=counted_p - len(stored_p),
        duplicated_truths=counted_truths - truths,
        bus_records=bus_records(bootstrap, topics),
        redelivered=claims - claimed,
    )
