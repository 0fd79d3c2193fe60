"""Outcome intake: what happened after an answer (a game won, a session kept), reported by the
product, checked against the experiment's metric definitions and accepted once, as an
OutcomeRecorded event through the outbox.

An outcome is tied to a prediction (its id and the receipt issued with it) or to a randomisation
unit of an experiment (unit id and experiment id). The worker joins it to the arm that served
the prediction or the unit, whichever reaches it first, however late.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import events, receipts
from core.errors import AbvocError, Conflict, Forbidden, NotFound, refuse_unknown
from core.ids import MAX_ROW_ID, time_ordered_id
from core.outbox import add_event
from core.outcome_metrics import check_after_creation, check_observed_at, check_value
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.models import Experiment, ExperimentMetric, OutcomeRequest, ServedPrediction
from core.store.spool_others import await_row
from core.times import as_utc
from feedback.corrections import scoped_key

FIELDS = {"prediction_id", "receipt", "unit_id", "experiment_id", "metric", "value",
          "observed_at", "event_id"}
LIMITS = {"prediction_id": 64, "receipt": 128, "unit_id": 200, "metric": 50, "event_id": 64,
          "observed_at": 64}
EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# RFC 3339 date-time (what the OpenAPI document's "date-time" format means), offset required.
# An outcome is stored once per identity (key, event_id, body); the rows after the first carry
# its id with this mark and a number, as outcome ids are unique (uuid hex: no mark in them).
ALIAS = "/"


def _strings(body: dict[str, Any]) -> None:
    for key, limit in LIMITS.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise AbvocError(f"'{key}' must be a non-empty string")
        if len(value) > limit:
            raise AbvocError(f"'{key}' is {len(value)} characters; the limit is {limit}")


def _observed_at(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    return check_observed_at(text, utcnow())


def _check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AbvocError("the body must be a JSON object with metric, value and either "
                         "prediction_id and receipt, or unit_id and experiment_id")
    refuse_unknown(body, FIELDS)
    _strings(body)
    by_prediction = body.get("prediction_id") is not None or body.get("receipt") is not None
    by_unit = body.get("unit_id") is not None or body.get("experiment_id") is not None
    if by_prediction == by_unit:
        raise AbvocError("tie the outcome to a prediction ('prediction_id' and 'receipt') or to "
                         "a unit ('unit_id' and 'experiment_id'), not both and not neither")
    if by_prediction and not (body.get("prediction_id") and body.get("receipt")):
        raise AbvocError("'prediction_id' and 'receipt' go together: send the receipt that "
                         "came with the prediction")
    if by_unit:
        exp = body.get("experiment_id")
        if isinstance(exp, bool) or not isinstance(exp, int) or not 1 <= exp <= MAX_ROW_ID:
            raise AbvocError("'experiment_id' must be the integer id of an experiment")
        if not (body.get("unit_id") or "").strip():  # blank: no unit a prediction names
            raise AbvocError("'unit_id' is required with 'experiment_id' (not blank): the id "
                             "the unit's predictions were routed by")
    if not isinstance(body.get("metric"), str):
        raise AbvocError("'metric' is required: the name of a metric defined on the experiment")
    if "value" not in body:
        raise AbvocError("'value' is required: a number (0/1 or true/false for a proportion)")
    event_id = body.get("event_id")
    if event_id is not None and not EVENT_ID.fullmatch(event_id):
        raise AbvocError("'event_id' may hold letters, digits and . _ : - only")
    checked = {k: body.get(k) for k in FIELDS}
    checked["observed_at"] = _observed_at(body.get("observed_at"))
    return checked


def _undefined(s: Session, experiment_id: int, name: str, admin: bool) -> str:
    """Why an undefined metric is refused. Only an admin key is told the defined names: they
    are the experiment owner's, and an outcome key (a product's) has no business listing them."""
    where = f"metric {name!r} is not defined on experiment {experiment_id}"
    if not admin:
        return (f"{where}; ask the experiment's owner for its metric names (an admin key sees "
                f"them with GET /v1/experiments/{experiment_id}/metrics)")
    known = sorted(s.scalars(select(ExperimentMetric.name).where(
        ExperimentMetric.experiment_id == experiment_id)).all())
    return (f"{where}; defined: {known or 'none'} (define it with "
            f"POST /v1/experiments/{experiment_id}/metrics)")


def _after_creation(s: Session, experiment_id: int, when: datetime) -> None:
    """Refuse an outcome dated before its experiment existed (the worker checks the same)."""
    experiment = s.get(Experiment, experiment_id)
    check_after_creation(experiment_id, None if experiment is None
                         else as_utc(experiment.created_at), when)


def _request_hash(checked: dict[str, Any]) -> str:
    fields = {k: checked[k] for k in ("prediction_id", "unit_id", "experiment_id", "metric",
                                      "value", "event_id")}
    fields["observed_at"] = checked["observed_at"].isoformat() if checked["given_time"] else None
    return events.body_hash(fields)


def submit_outcome(db: Database, settings: Settings, body: Any,
                   idempotency_key: str | None = None, *,
                   caller: int | None = None, admin: bool = False) -> dict[str, Any]:
    """Accept an outcome once; the same request again (same Idempotency-Key from the same API
    key `caller`, same event_id, or the same body) returns the first one's id. Only the header
    key is per caller: event ids and bodies name the outcome itself, whoever sends it. `admin`:
    the caller may see the experiment's metric names (in the error for an undefined one)."""
    checked = _check(body)
    checked["given_time"] = body.get("observed_at") is not None
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
        raise AbvocError("the Idempotency-Key header must be 1 to 128 characters")
    if checked["prediction_id"] is not None and not receipts.verify(
            settings.secret_key, checked["prediction_id"], checked["receipt"]):
        # Checked before any lookup, so a caller without receipts learns nothing about ids.
        raise Forbidden("the receipt does not match the prediction; send the receipt that came "
                        "with it")
    if checked["prediction_id"] is not None:
        await_row(db, ServedPrediction, checked["prediction_id"])
    # One read-only unit for the checks and the idempotency lookup (on SQLite it takes no write
    # lock); only a new outcome opens a write.
    with db.reading() as s:
        if checked["prediction_id"] is not None:
            served = s.get(ServedPrediction, checked["prediction_id"])
            if served is None:
                raise NotFound(f"prediction {checked['prediction_id']!r} is unknown; send a "
                               "prediction_id that /v1/predict or /v2 infer returned")
            if served.experiment_id is None or not served.arm:
                raise AbvocError(f"prediction {checked['prediction_id']!r} was not served in an "
                                 "experiment's arm, so no metric of it can count")
            if served.excluded:
                # The ledger keeps where an excluded request went; its results never count it,
                # so an outcome of it would be accepted and then lost.
                raise AbvocError(f"prediction {checked['prediction_id']!r} was kept out of "
                                 f"experiment {served.experiment_id}'s results ("
                                 f"{served.excluded}), so no metric of it can count")
            experiment_id = int(served.experiment_id)
        else:
            experiment_id = int(checked["experiment_id"])
            experiment = s.get(Experiment, experiment_id)
            if experiment is None:
                raise NotFound(f"experiment {experiment_id} does not exist")
            if experiment.unit == "request":
                # Its units are requests (serving/router.py): no unit id of the caller's is one.
                raise AbvocError(f"experiment {experiment_id} randomizes each request (unit "
                                 "'request'): send the outcome with the prediction_id and "
                                 "receipt of the answer it follows, not a unit_id")
        metric = s.get(ExperimentMetric, (experiment_id, checked["metric"]))
        if metric is None:
            raise AbvocError(_undefined(s, experiment_id, checked["metric"], admin))
        if checked["given_time"]:
            _after_creation(s, experiment_id, checked["observed_at"])
        value = check_value(metric.name, metric.kind, checked["value"])
        checked_as = metric.kind  # read here: the row is not the write's
        checked["value"] = value
        digest = _request_hash(checked)
        keys = _identities(None if idempotency_key is None else
                           scoped_key(caller, idempotency_key), checked["event_id"], digest)
        existing = _existing(s, keys, digest, legacy=idempotency_key)
    if existing is not None:
        first_id, known_by = existing
        _remember(db, [k for k in keys if k not in known_by], digest, first_id,
                  experiment_id, checked["metric"])
        return _accepted(first_id, experiment_id, duplicate=True)
    # Time-ordered, so outcomes observed at one instant combine as `first` in the order they
    # were accepted (the worker breaks such ties by outcome id).
    outcome_id = time_ordered_id()
    link = ({"prediction_id": checked["prediction_id"], "receipt": checked["receipt"]}
            if checked["prediction_id"] is not None else {"unit_id": checked["unit_id"]})
    try:
        with db.session() as s:
            # One row per identity, all in this transaction: the primary keys decide a race
            # between two requests sharing any of them, and each finds this outcome again.
            _still_fits(s, experiment_id, checked["metric"], checked_as, value)
            now = utcnow()
            s.add_all([OutcomeRequest(idempotency_key=key, request_hash=digest, created_at=now,
                                      outcome_id=outcome_id if i == 0 else
                                      f"{outcome_id}{ALIAS}{i}",
                                      experiment_id=experiment_id, metric=checked["metric"])
                       for i, key in enumerate(keys)])
            s.flush()
            add_event(s, events.make_event(
                events.OUTCOME_RECORDED, outcome_id=outcome_id, experiment_id=experiment_id,
                metric=checked["metric"], value=value,
                observed_at=checked["observed_at"].isoformat(), **link), settings.topic_prefix,
                validated=True)
    except IntegrityError:
        # A request sharing one of its identities raced us here; the first one won and this
        # one is that one (or a 409 when a key or event_id came with another body).
        with db.reading() as s:
            existing = _existing(s, keys, digest)
        if existing is None:
            raise
        return _accepted(existing[0], experiment_id, duplicate=True)
    return _accepted(outcome_id, experiment_id, duplicate=False)


def _accepted(outcome_id: str, experiment_id: int, *, duplicate: bool) -> dict[str, Any]:
    """The answer, one shape for a first request and its repeats (a repeat is the same body,
    so the same experiment): a client reads it without knowing which it got."""
    return {"outcome_id": outcome_id, "experiment_id": experiment_id, "duplicate": duplicate}


def _remember(db: Database, new: list[str], digest: str, outcome_id: str, experiment_id: int,
              metric: str) -> None:
    """A repeat found by one of its identities is known by its `new` ones from now on: a
    retry that sends only its new Idempotency-Key is the same outcome, and that key reused for
    another body a 409 (it was stored nowhere, so such a body was a new outcome)."""
    if not new:
        return
    now = utcnow()
    # A racing repeat may store them first: then they are there, as wanted.
    with contextlib.suppress(IntegrityError), db.session() as s:
        s.add_all([OutcomeRequest(
            idempotency_key=key, request_hash=digest, created_at=now,
            outcome_id=f"{outcome_id}{ALIAS}{hashlib.sha256(key.encode()).hexdigest()[:12]}",
            experiment_id=experiment_id, metric=metric) for key in new])


def _still_fits(s: Session, experiment_id: int, metric: str, kind: str, value: float) -> None:
    """The value checked against the metric's kind, read again in the transaction that accepts
    it (locked on PostgreSQL, as a kind change locks it: see
    evaluation.metric_definitions), so a kind changed since the first check cannot take a
    value of the old kind."""
    now = s.scalar(select(ExperimentMetric.kind).where(
        ExperimentMetric.experiment_id == experiment_id, ExperimentMetric.name == metric)
        .with_for_update(read=True))
    if now is not None and now != kind:
        check_value(metric, now, value)


def _identities(idempotency_key: str | None, event_id: str | None, digest: str) -> list[str]:
    """The keys a request is known by, each enough to make a later request the same outcome:
    its Idempotency-Key and its event_id when it has them (a new key is a new outcome, as a
    client that sends one fresh key per event expects: two purchases of one price are two);
    otherwise its body."""
    keys = [idempotency_key, f"event:{event_id}" if event_id else None]
    return list(dict.fromkeys(k for k in keys if k)) or [digest]


def _existing(s: Session, keys: list[str], digest: str, *,
              legacy: str | None = None) -> tuple[str, set[str]] | None:
    """The earlier outcome this request repeats by any of its identities (its id, and the
    identities already stored for it); a key or event_id used before for another body is a
    conflict, whatever the other identities match.
    `legacy`: the raw Idempotency-Key, as stores kept it before keys were scoped; a row under
    it is this outcome only when its body is the same (never a conflict: it may be another
    caller's), so a retry across the upgrade counts once."""
    wanted = [*keys, *([legacy] if legacy and legacy not in keys else [])]
    rows = {r.idempotency_key: r for r in s.scalars(
        select(OutcomeRequest).where(OutcomeRequest.idempotency_key.in_(wanted)))}
    found = [rows[k] for k in keys if k in rows]
    if not found and legacy in rows and rows[legacy].request_hash == digest:
        found = [rows[legacy]]
    if any(row.request_hash != digest for row in found):
        raise Conflict("this Idempotency-Key (or event_id) was used for a different outcome; "
                       "use a new one for a new outcome")
    if not found:
        return None
    return found[0].outcome_id.split(ALIAS)[0], {row.idempotency_key for row in found}
