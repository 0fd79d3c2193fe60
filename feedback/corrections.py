"""Correction intake, the voice-of-customer channel: check a customer's correction and accept it
once, as a CorrectionSubmitted event through the outbox."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import events, receipts
from core.errors import AbvocError, Conflict, Forbidden, NotFound, refuse_unknown
from core.outbox import add_event
from core.output_types import OutputKind, check_output
from core.settings import Settings
from core.store.db import Database, utcnow
from core.store.models import Candidate, CorrectionRequest, ServedPrediction
from core.store.spool_others import await_row
from feedback.page_size import with_page

MAX_COMMENT_CHARS = 2000
FIELDS = {"prediction_id", "receipt", "corrected_output", "rating", "comment"}
# Text fields and their lengths: ids and receipts are never longer than abvoc issues them (the
# corrected output's limits depend on its type: core/output_types.py).
LIMITS = {"prediction_id": 64, "receipt": 128, "comment": MAX_COMMENT_CHARS}


def _check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AbvocError("the body must be a JSON object with prediction_id, receipt and "
                         "corrected_output")
    refuse_unknown(body, FIELDS)
    for key in ("prediction_id", "receipt"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise AbvocError(f"'{key}' is required and must be a non-empty string")
    if "corrected_output" not in body:
        raise AbvocError("'corrected_output' is required: the output the prediction should "
                         "have had, of the candidate's output type")
    if body.get("comment") is not None and not isinstance(body["comment"], str):
        raise AbvocError("'comment' must be a string")
    for key, limit in LIMITS.items():
        if len(body.get(key) or "") > limit:
            raise AbvocError(f"'{key}' is {len(body[key])} characters; the limit is {limit}")
    rating = body.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int)
                               or not 1 <= rating <= 5):
        raise AbvocError("'rating' must be an integer from 1 to 5")
    return {k: body.get(k) for k in FIELDS}


def _output_kind(s: Session, served: ServedPrediction) -> OutputKind:
    """The output type of the candidate version that served the prediction: the one its ledger
    row names, else (rows from before versions were recorded) the newest one of its name
    registered before it and not retired by then (the registry's pick at the time)."""
    same_name = select(Candidate.pipeline).where(Candidate.name == served.candidate)
    if served.version is not None:
        pipeline = s.scalars(same_name.where(Candidate.version == served.version)).first()
        if pipeline is not None:
            return OutputKind.of_pipeline(pipeline)
    pipeline = s.scalars(same_name.where(
        Candidate.created_at <= served.created_at,
        or_(Candidate.retired_at.is_(None), Candidate.retired_at > served.created_at),
    ).order_by(Candidate.id.desc()).limit(1)).first()
    if pipeline is None:  # e.g. clocks apart: the newest of that name
        pipeline = s.scalars(same_name.order_by(Candidate.id.desc()).limit(1)).first()
    return OutputKind.of_pipeline(pipeline)


def _request_hash(body: dict[str, Any]) -> str:
    fields = {k: body[k] for k in ("prediction_id", "corrected_output", "rating", "comment")}
    return events.body_hash(fields)


def scoped_key(caller: int | None, idempotency_key: str) -> str:
    """The stored form of an Idempotency-Key: the calling API key's id and the header's hash.
    Scoped so that one client can neither probe nor pre-claim another's keys; hashed so that
    any header of up to 128 characters fits the 128-character column with its scope (and can
    never equal a keyless request's body digest, which has no ``k`` prefix)."""
    if caller is None:
        raise ValueError("an Idempotency-Key needs the id of the API key that sent it")
    return f"k{caller}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


def submit_correction(db: Database, settings: Settings, body: Any,
                      idempotency_key: str | None = None, *,
                      caller: int | None = None) -> dict[str, Any]:
    """Accept a correction once; the same request again returns the first one's id. A key
    given is the caller's own (`caller`: the API key's id): another API key may use the same
    one for another correction."""
    checked = _check(body)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
        raise AbvocError("the Idempotency-Key header must be 1 to 128 characters")
    # The receipt first: it needs no lookup, so a caller without one learns nothing about which
    # prediction ids exist.
    if not receipts.verify(settings.secret_key, checked["prediction_id"], checked["receipt"]):
        raise Forbidden("the receipt does not match the prediction; send the receipt that came "
                        "with it")
    await_row(db, ServedPrediction, checked["prediction_id"])
    with db.reading() as s:
        served = s.get(ServedPrediction, checked["prediction_id"])
        if served is None:
            raise NotFound(f"prediction {checked['prediction_id']!r} is unknown; correct a "
                           "prediction_id that /v1/predict or /v2 infer returned")
        kind = with_page(s, _output_kind(s, served), served.prediction_id)
    checked["corrected_output"] = check_output(kind, checked["corrected_output"])
    # The body as checked: 2 and 2.0 are one number, so one correction.
    digest = _request_hash(checked)
    key = scoped_key(caller, idempotency_key) if idempotency_key is not None else digest
    keyless = idempotency_key is None
    existing = _existing(db, key, digest, checked["prediction_id"] if keyless else None,
                         legacy=idempotency_key)
    if existing is not None:
        return existing
    correction_id = uuid.uuid4().hex
    try:
        with db.session() as s:
            _take_turn(s, db.dialect, checked["prediction_id"])
            # Looked up again with the turn held: a keyed request of this body that raced the
            # check above is committed by now, and this keyless one is that correction.
            if keyless and (repeat := _repeat(s, key, digest, checked["prediction_id"])):
                return repeat
            accepted = CorrectionRequest(idempotency_key=key, correction_id=correction_id,
                                         prediction_id=checked["prediction_id"],
                                         request_hash=digest, created_at=utcnow())
            s.add(accepted)
            s.flush()
            earlier = _earlier(s, accepted)
            add_event(s, events.make_event(
                events.CORRECTION_SUBMITTED, correction_id=correction_id,
                prediction_id=checked["prediction_id"], receipt=checked["receipt"],
                corrected_output=checked["corrected_output"], output_type=kind.type,
                rating=checked["rating"],
                comment=checked["comment"]), settings.topic_prefix, validated=True)
    except IntegrityError:
        # The same request raced us here; the first one won and this one is that one.
        existing = _existing(db, key, digest)
        if existing is None:
            raise
        return existing
    return {"correction_id": correction_id, "prediction_id": checked["prediction_id"],
            "duplicate": False, "earlier_corrections": earlier}


# The first half of the two-key advisory lock a prediction's corrections take turns on
# (PostgreSQL; "abcr" in ASCII, apart from the annotators' claim lock).
CORRECTION_LOCK = 0x61626372


def _take_turn(s: Session, dialect: str, prediction_id: str) -> None:
    """Accept a prediction's corrections one after another, each timed once it has its turn:
    timed before it, two racing corrections each counted none before them (and the one the
    stream took as the truth could say it had one). SQLite's writers take turns already
    (BEGIN IMMEDIATE, opened here); PostgreSQL's take a lock on the prediction."""
    if dialect == "postgresql":
        s.execute(select(func.pg_advisory_xact_lock(CORRECTION_LOCK,
                                                    func.hashtext(prediction_id))))
    else:
        s.connection()


def _existing(db: Database, key: str, digest: str, prediction_id: str | None = None, *,
              legacy: str | None = None) -> dict[str, Any] | None:
    """The earlier request this one repeats: the one with its key; for a keyless request
    (`prediction_id` given), any earlier one with its body, keyed or not. `legacy`: the raw
    Idempotency-Key, as stores kept it before keys were scoped (:func:`scoped_key`); a row
    under it is this request only when its body is the same, so a retry across the upgrade
    counts once and nobody learns of another's keys."""
    with db.reading() as s:
        return _repeat(s, key, digest, prediction_id, legacy=legacy)


def _repeat(s: Session, key: str, digest: str, prediction_id: str | None = None, *,
            legacy: str | None = None) -> dict[str, Any] | None:
    """:func:`_existing`'s look-up in a unit of work the caller holds."""
    row = s.scalars(select(CorrectionRequest).where(
        CorrectionRequest.idempotency_key == key)).first()
    if row is None and legacy is not None:
        row = s.scalars(select(CorrectionRequest).where(
            CorrectionRequest.idempotency_key == legacy,
            CorrectionRequest.request_hash == digest)).first()
    if row is None and prediction_id is not None:
        row = s.scalars(select(CorrectionRequest).where(
            CorrectionRequest.prediction_id == prediction_id,
            CorrectionRequest.request_hash == digest)
            .order_by(CorrectionRequest.created_at).limit(1)).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was used for a different correction; use a "
                       "new key for a new correction")
    return {"correction_id": row.correction_id, "prediction_id": row.prediction_id,
            "duplicate": True, "earlier_corrections": _earlier(s, row)}


def _earlier(s: Session, row: CorrectionRequest) -> int:
    """How many other corrections of its prediction were accepted before `row`: the stream
    holds a prediction's first correction as its truth (unless a verified label overrides it);
    later ones are kept as what customers said, and told so."""
    return s.scalar(select(func.count()).select_from(CorrectionRequest).where(
        CorrectionRequest.prediction_id == row.prediction_id,
        CorrectionRequest.correction_id != row.correction_id,
        CorrectionRequest.created_at <= row.created_at)) or 0
