"""The evaluation worker: applies PredictionMade, CorrectionSubmitted and OutcomeRecorded events
to the store.

It runs as a member of the `evaluation` consumer group; several workers share the partitions.
For each batch, in the stream's one transaction (see :mod:`core.stream` for the commit order):

1. insert the new predictions and corrections (ON CONFLICT DO NOTHING ... RETURNING, so a row
   already stored under its natural key is neither stored nor counted again). A batch whose
   events were all claimed fresh (the usual case, with its prepared rows) inserts its
   predictions plainly, by COPY on PostgreSQL: a fresh event's prediction id is new unless a
   producer reused it under another event id, and then the unique key refuses the batch and
   the stream applies it again event by event, through ON CONFLICT;
2. count units first seen per experiment and slice (the SRM counts), the same way;
3. join truths: every prediction touched by the batch that has a correction and no
   ``prediction_truths`` row gets one, from its earliest correction. Whichever of a prediction
   and its corrections arrives first, the join happens when the second arrives, exactly once;
4. add the batch's sums to ``online_aggregates``, one row per key (summed in Python first):
   additive rows in one upsert, then the latency rows in one upsert that locks them and returns
   their sketches, which are merged in Python and written back in one executemany UPDATE; then
   each unit's sums to ``unit_sums`` (one upsert; :mod:`evaluation.unit_sums`), from which the
   tests read per unit;
5. store the batch's outcomes and count those waiting outcomes whose prediction or unit is now
   known (see :mod:`evaluation.outcomes`);
6. apply the relabeling rules to the touched predictions (:mod:`evaluation.relabel_enqueue`).

Each step is one statement for the whole batch (on PostgreSQL the rows travel as one JSON
document, see :func:`core.store.upsert.insert_rows`), so a batch costs about ten round trips
whatever its size.
The rows and the predictions' sums are built before the transaction opens
(:func:`prepare_events`), so the transaction holds SQLite's one write lock only for the store's
own work.

Before any of that, each CorrectionSubmitted event must carry the receipt issued with its
prediction (an HMAC of the prediction id under the service's secret, given to the worker by its
constructor): whoever can write to the corrections topic must not set the truth of predictions
whose receipts they never saw. An event without a valid receipt is parked with the reason.

Exactness under replay comes from the stream's event-id dedupe in the same transaction. Rows are
written in one fixed key order (additive rows, then latency rows, each sorted) so that workers
sharing a group's rows lock them in the same order and never deadlock.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, Table, Update, and_, bindparam, select, update
from sqlalchemy.orm import Session

from core import events, receipts
from core.bus.base import Bus
from core.errors import Forbidden
from core.settings import Secret
from core.store.db import Database, utcnow
from core.store.models import (
    Correction,
    ExperimentUnit,
    OnlineAggregate,
    Prediction,
    PredictionTruth,
)
from core.store.outcome_models import UnitSums
from core.store.upsert import in_param, in_values, insert_many, insert_rows
from core.stream import Check, StreamConsumer
from evaluation import sketch
from evaluation.aggregation import (
    LATENCY,
    UNIT_COLUMNS,
    UNIT_KEYS,
    Accumulator,
    Group,
    PredictionFacts,
    first_by,
    hour_of,
)
from evaluation.event_times import event_time, with_times
from evaluation.outcomes import apply_outcomes
from evaluation.relabel_enqueue import enqueue
from evaluation.stage_blame import verdict

log = logging.getLogger(__name__)
GROUP_ID = "evaluation"
_ADDITIVE = ("n", "sum", "sum_squares")
_GROUP_KEYS = ("experiment_id", "arm", "candidate", "shadow", "slice", "hour")
_KEYS = (*_GROUP_KEYS, "metric", "label")
_AGGREGATES = OnlineAggregate.__table__


def _insert_new(session: Session, table: Table, rows: list[dict[str, Any]], keys: list[str],
                returning: str) -> set[Any]:
    """Insert rows, skipping existing keys; the ``returning`` values of the rows inserted."""
    return {row[0] for row in insert_rows(session, table, rows, keys, returning=[returning])}


def _prediction_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "prediction_id": e["prediction_id"],
        "event_id": e["event_id"],
        "experiment_id": e.get("experiment_id"),
        "candidate": e["candidate"],
        "arm": e.get("arm"),
        "shadow": bool(e.get("shadow", False)),
        "unit_id": e.get("unit_id"),
        "slice": e.get("slice") or "all",
        "input_hash": e["input_hash"],
        "output": events.output_text(e),
        "output_type": e.get("output_type"),
        "confidence": e.get("confidence"),
        "latency_ms": e.get("latency_ms"),
        "failed": e.get("error") is not None,
        "stages": e.get("stages") or {},
        "created_at": event_time(e, "occurred_at"),
    }


def _correction_row(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "correction_id": e["correction_id"],
        "event_id": e["event_id"],
        "prediction_id": e["prediction_id"],
        "corrected_output": events.corrected_text(e),
        "output_type": e.get("output_type"),
        "rating": e.get("rating"),
        "comment": e.get("comment"),
        "created_at": event_time(e, "occurred_at"),
    }


def _unique(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted({r[key]: r for r in reversed(rows)}.values(), key=lambda r: r[key])


def _count_units(session: Session, facts: list[PredictionFacts], acc: Accumulator) -> None:
    """Record each unit's first prediction per experiment and slice; the units aggregate counts
    it in that prediction's hour, and ``first_seen`` is the same hour, so a time window counts
    a unit once per arm from this table exactly where the aggregates count it per slice."""
    groups: dict[tuple, Group] = {}
    for p in facts:
        g = p.group
        if g.experiment_id and not g.shadow and g.arm and p.unit_id:
            key = (g.experiment_id, g.slice, p.unit_id)
            if key not in groups or g.hour < groups[key].hour:
                groups[key] = g
    if not groups:
        return
    rows = [{"experiment_id": key[0], "slice": key[1], "unit_id": key[2],
             "arm": groups[key].arm, "first_seen": groups[key].hour} for key in sorted(groups)]
    fresh = insert_rows(session, ExperimentUnit.__table__, rows,
                        ["experiment_id", "slice", "unit_id"],
                        returning=["experiment_id", "slice", "unit_id"])
    for key in fresh:
        acc.add_unit(groups[tuple(key)])


def _stored_facts(session: Session, ids: set[str], stages: dict[str, Any]
                  ) -> dict[str, PredictionFacts]:
    """The facts of stored predictions; their stages go into `stages`, by prediction id."""
    if not ids:
        return {}
    rows = session.execute(
        select(Prediction).where(in_values(session, Prediction.prediction_id, sorted(ids)))
    ).scalars().all()
    stages.update((p.prediction_id, p.stages) for p in rows)
    return {
        p.prediction_id: PredictionFacts.of(
            prediction_id=p.prediction_id, experiment_id=p.experiment_id, arm=p.arm,
            candidate=p.candidate, shadow=p.shadow, slice_=p.slice, created_at=p.created_at,
            output=p.output, confidence=p.confidence, latency_ms=p.latency_ms,
            stages=p.stages, unit_id=p.unit_id, output_type=p.output_type,
            error=p.failed)  # a late correction of a failure: not a wrong answer as well
        for p in rows
    }


def _join_truths(session: Session, touched: set[str], new_facts: dict[str, PredictionFacts],
                 acc: Accumulator, stages: dict[str, Any]) -> dict[str, str]:
    """Count the first correction of each touched prediction without a truth as its truth,
    with the stage it blames (:func:`evaluation.stage_blame.verdict`); `stages` holds the
    stages of the predictions this batch stored. Returns those corrections' outputs by
    prediction id (every correction of a prediction this batch stored is among them: it had
    no truth before)."""
    if not touched:
        return {}
    corrections = session.execute(_untruthed(session.get_bind().dialect.name),
                                  {"ids": sorted(touched)}).all()
    first = first_by(corrections, "prediction_id")
    if not first:
        return {}
    facts = {pid: new_facts[pid] for pid in first if pid in new_facts}
    facts.update(_stored_facts(session, set(first) - set(facts), stages))
    now = utcnow()
    truths = []
    for pid in sorted(facts):
        truth = first[pid].corrected_output
        blame, names = verdict(facts[pid].output, stages.get(pid), truth,
                               facts[pid].output_type)
        truths.append({"prediction_id": pid, "correction_id": first[pid].correction_id,
                       "truth": truth, "counted_at": now, "blame": blame,
                       "blame_stages": names})
    joined = _insert_new(session, PredictionTruth.__table__, truths, ["prediction_id"],
                         "prediction_id")
    for pid in sorted(joined):
        acc.add_truth(facts[pid], first[pid].corrected_output, first[pid].output_type)
    return {pid: row.corrected_output for pid, row in first.items()}


@cache
def _untruthed(dialect: str) -> Select:
    """Corrections of the given predictions (``ids``) that have no truth yet, earliest first."""
    c, t = Correction.__table__.c, PredictionTruth.__table__.c
    has_truth = select(t.prediction_id).where(t.prediction_id == c.prediction_id).exists()
    return (select(c.correction_id, c.prediction_id, c.corrected_output, c.output_type)
            .where(in_param(c.prediction_id, "ids", dialect), ~has_truth)
            .order_by(c.created_at, c.correction_id))


def _add_sums(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_rows(session, _AGGREGATES, rows, _KEYS, add=_ADDITIVE)


def _add_unit_sums(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_rows(session, UnitSums.__table__, rows, UNIT_KEYS, add=UNIT_COLUMNS)


def _add_latencies(session: Session, groups: list[tuple[Group, list[float]]]) -> None:
    """Add the latency rows' sums and merge their histograms, in two statements.

    The first creates missing rows and adds n / sum / sum_squares (ON CONFLICT DO UPDATE, rows
    in key order), which locks every row until the transaction ends; its RETURNING gives each
    sketch as it stands under that lock. The merged sketches then go back in one executemany
    UPDATE, so no other worker can merge in between.
    """
    if not groups:
        return
    rows = [{**g._asdict(), "metric": LATENCY, "label": "", "n": len(values),
             "sum": math.fsum(values), "sum_squares": math.fsum(v * v for v in values)}
            for g, values in groups]
    returned = insert_rows(session, _AGGREGATES, rows, _KEYS, add=_ADDITIVE,
                           returning=[*_GROUP_KEYS, "sketch"])
    stored = {_stored_group(r): r.sketch for r in returned}
    updates = []
    for group, values in groups:
        merged = sketch.decode(stored[group]) + sketch.from_values(values)
        updates.append({**{f"k_{k}": v for k, v in group._asdict().items()},
                        "sk": sketch.encode(merged)})
    session.connection().execute(_sketch_update(), updates)


@cache
def _sketch_update() -> Update:
    """Set one latency row's sketch (``sk``), the row given by its group (``k_<key>``)."""
    t = _AGGREGATES
    where = and_(*(t.c[k] == bindparam(f"k_{k}") for k in _GROUP_KEYS), t.c.metric == LATENCY,
                 t.c.label == "")
    return update(t).where(where).values(sketch=bindparam("sk"))


def _stored_group(row: Any) -> Group:
    """The group of a returned row; SQLite gives the hour back without its time zone."""
    return Group(row.experiment_id, row.arm, row.candidate, bool(row.shadow), row.slice,
                 hour_of(row.hour))


@dataclass
class Prepared:
    """A batch's rows and its predictions' sums, built before the transaction opens (see
    core.stream.Prepare); `acc` holds every prediction of `facts`."""

    predictions: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    facts: dict[str, PredictionFacts]
    acc: Accumulator


def prepare_events(batch: list[dict[str, Any]]) -> Prepared:
    """The store-free part of :func:`apply_events` for a batch of validated events."""
    predictions, corrections = [], []
    facts: dict[str, PredictionFacts] = {}
    for e in batch:
        if e["event_type"] == events.PREDICTION_MADE:
            row = _prediction_row(e)
            predictions.append(row)
            facts[row["prediction_id"]] = PredictionFacts.from_row(row, e.get("error"))
        elif e["event_type"] == events.CORRECTION_SUBMITTED:
            corrections.append(_correction_row(e))
    return Prepared(_unique(predictions, "prediction_id"),
                    _unique(corrections, "correction_id"), facts, _summed(facts))


def _summed(facts: dict[str, PredictionFacts]) -> Accumulator:
    acc = Accumulator()
    for p in facts.values():
        acc.add_prediction(p)
    return acc


def apply_events(session: Session, batch: list[dict[str, Any]],
                 prepared: Prepared | None = None) -> None:
    """Store a batch of validated events and add it to the online aggregates, in the caller's
    transaction; `prepared` is :func:`prepare_events` of this very batch, when the caller
    built it beforehand."""
    if prepared is None:
        prepared = prepare_events(batch)
        new_p = _insert_new(session, Prediction.__table__, prepared.predictions,
                            ["prediction_id"], "prediction_id")
    else:  # every event fresh (see core.stream.Prepare): a plain insert, COPY on PostgreSQL
        insert_many(session, Prediction.__table__, prepared.predictions)
        new_p = prepared.facts.keys()  # all of them: the insert stored every one or failed
    new_c = _insert_new(session, Correction.__table__, prepared.corrections, ["correction_id"],
                        "correction_id")
    facts, acc = prepared.facts, prepared.acc
    if new_p != facts.keys():  # some were stored before (a replay): count only the new ones
        facts = {pid: p for pid, p in facts.items() if pid in new_p}
        acc = _summed(facts)
    corrections = prepared.corrections
    _count_units(session, list(facts.values()), acc)
    touched = set(facts) | {c["prediction_id"] for c in corrections if c["correction_id"] in new_c}
    truths = _join_truths(session, touched, facts, acc, {
        r["prediction_id"]: r["stages"] for r in prepared.predictions if r.get("stages")})
    _add_sums(session, acc.rows())
    _add_latencies(session, acc.latency_groups())
    _add_unit_sums(session, acc.unit_rows())
    apply_outcomes(session, batch)
    enqueue(session, touched, known={r["prediction_id"]: r for r in prepared.predictions
                                     if r["prediction_id"] in facts}, known_truths=truths)


def receipt_check(secret: Secret | str | None) -> Check:
    """A check that refuses a correction, or an outcome tied to a prediction, unless it carries
    the prediction's receipt.

    Without a secret nothing can be verified, so every correction is refused (fail closed)."""

    def check(event: dict[str, Any]) -> None:
        if event["event_type"] == events.CORRECTION_SUBMITTED:
            kind = "a correction"
            what = f"correction {event['correction_id']!r}"
        elif event["event_type"] == events.OUTCOME_RECORDED and event.get("prediction_id"):
            kind = "an outcome"
            what = f"outcome {event['outcome_id']!r}"
        else:
            return
        receipt = event.get("receipt")
        prediction_id = event["prediction_id"]
        if secret is None:
            raise Forbidden(f"{what}: this worker has no secret "
                            "to verify receipts with; start it with the service's secret key")
        if not isinstance(receipt, str) or not receipts.verify(secret, prediction_id, receipt):
            raise Forbidden(f"{what} carries no valid receipt "
                            f"for prediction {prediction_id!r}; only the receipt issued with "
                            f"the prediction lets {kind} count")

    return check


def make_worker(db: Database, bus: Bus, prefix: str, *, secret: Secret | str | None = None,
                **kwargs: Any) -> StreamConsumer:
    """A group member that applies events; `secret` verifies correction receipts (and every
    event's times are checked, :mod:`evaluation.event_times`). Its heartbeat
    names the topic prefix and group it reads (/readyz compares the prefix with the API's) and
    carries the receipt alarm's note (a wrong key parks what it reads while the loop runs)."""
    worker = StreamConsumer(db, bus, GROUP_ID, events.topics(prefix), apply_events,
                            check=with_times(receipt_check(secret)), prepare=prepare_events,
                            component="worker", **kwargs)
    heartbeat = worker.supervisor.heartbeat
    if heartbeat is not None:
        heartbeat.topic_prefix, heartbeat.consumer_group = prefix, GROUP_ID
        worker.receipts.heartbeat = heartbeat
    return worker


def run_worker(db: Database, bus: Bus, prefix: str, stop: threading.Event, *,
               secret: Secret | str | None = None) -> None:
    """Consume until `stop` is set (the `abvoc worker` command sets it on SIGTERM/SIGINT),
    supervised: errors restart the loop with backoff, they never end it. What it reads is
    logged first: a mistyped ABVOC_TOPIC_PREFIX reads topics nothing writes to."""
    worker = make_worker(db, bus, prefix, secret=secret)
    log.info("worker: consumer group %r reads %s (ABVOC_TOPIC_PREFIX=%r)", GROUP_ID,
             ", ".join(worker.topics), prefix)
    worker.run(stop)
