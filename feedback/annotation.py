"""The annotators' workflow on the relabel queues: claim, label, skip, flag; review by an admin.

**Leases.** :func:`claim` gives the most urgent claimable item (priority, then age) to one
annotator for ``lease_s`` seconds. An item is claimable when it is ``open``, or ``leased`` with
its lease run out: an abandoned claim returns to the queue by itself, no sweeper needed. The
claim is a conditional UPDATE that re-checks claimability (``WHERE id = ? AND (open OR
expired)``), so of two annotators racing for one item exactly one gets it; on PostgreSQL the
candidates are read ``FOR UPDATE SKIP LOCKED`` so racers take different items instead of
waiting, and on SQLite writers are serialised (``BEGIN IMMEDIATE``). An annotator holds one
live lease at most: claiming again returns the item held, its lease not extended.

**Labels.** A label is checked against the output type of the item's candidate
(:func:`core.output_types.check_output`) and stored in the store's text form. Where the item's
prediction was corrected by the customer, the label also gives a verdict on the correction:
``accept`` when they are the same answer, ``reject`` otherwise. An item needs one label, or two
for the configured share of items; when its labels agree it is ``done`` and its ``label`` is
ground truth, when they differ it goes to ``review`` and an admin resolves it. Labels agree, and
a verdict accepts, by the rule exact match follows (:mod:`core.same_answer`: spacing never
counts in text and LaTeX). An annotator never gets an item they already labeled or skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core.errors import AbvocError, Conflict, NotFound
from core.events import value_text
from core.output_types import OutputKind, check_output
from core.relabel import check_queue
from core.same_answer import same_output
from core.store.db import Database, utcnow
from core.store.models import (
    Candidate,
    Correction,
    PredictionInput,
    RelabelItem,
    RelabelLabel,
    ServedPrediction,
)
from core.text import text_problem
from core.times import as_utc
from feedback.cross_queue import (
    against_elsewhere,
    disagreement_note,
    item_output_type,
    settle,
    withdraw_copies,
)
from feedback.item_view import item_view
from feedback.page_size import with_page

LEASE_S = 600
MAX_LEASE_S = 3600
_CANDIDATES = 8
STATUSES = ("open", "leased", "review", "flagged", "done", "dropped")
# The first half of the two-key advisory lock one annotator's claims take turns on (PostgreSQL;
# "abvc" in ASCII; the two-key form shares no keys with the one-key locks elsewhere).
CLAIM_LOCK = 0x61627663


def output_kind(s: Session, candidate: str | None,
                prediction_id: str | None = None) -> OutputKind:
    """The output type of the candidate version that served the item's prediction (the API's
    ledger names it), else of the newest registered version of its candidate; a page's boxes
    with the page's size, where known, so a label past its edges is refused."""
    if candidate is None:
        return OutputKind.of_pipeline(None)
    same_name = select(Candidate.pipeline).where(Candidate.name == candidate)
    version = None if prediction_id is None else s.scalar(
        select(ServedPrediction.version).where(ServedPrediction.prediction_id == prediction_id))
    pipeline = None if version is None else s.scalars(
        same_name.where(Candidate.version == version)).first()
    if pipeline is None:
        pipeline = s.scalars(same_name.order_by(Candidate.id.desc()).limit(1)).first()
    return with_page(s, OutputKind.of_pipeline(pipeline), prediction_id)


def _claimable(now: Any) -> Any:
    """Open, or leased with the lease run out, and with its input kept: an item whose input
    is gone (never kept, or pruned before the item was made) would be labeled blind, and its
    label could never be exported; :func:`queue_figures` counts such items."""
    r = RelabelItem
    return and_(or_(r.status == "open", and_(r.status == "leased", r.lease_until < now)),
                _input_kept())


def _input_kept() -> Any:
    return select(PredictionInput.prediction_id).where(
        PredictionInput.input_hash == RelabelItem.input_hash).exists()


def _seen_by(annotator: str) -> Any:
    """The items `annotator` labeled or skipped: never offered to them again."""
    lb = RelabelLabel
    return select(lb.item_id).where(lb.annotator == annotator, lb.action.in_(("label", "skip")))


def claimable_counts(db: Database, annotator: str) -> dict[str, int]:
    """Per queue, how many items a claim by `annotator` could lease now: those :func:`claim`
    picks from (open or with the lease run out, input kept, not labeled or skipped by them),
    which the items' statuses alone do not tell."""
    r = RelabelItem
    with db.reading() as s:
        rows = s.execute(select(r.queue, func.count())
                         .where(_claimable(utcnow()), r.id.not_in(_seen_by(annotator)))
                         .group_by(r.queue))
        return {queue: int(n) for queue, n in rows}


def _live_lease(s: Session, annotator: str, now: Any) -> RelabelItem | None:
    """The item `annotator` holds now, if any (at most one: see :func:`claim`)."""
    r = RelabelItem
    return s.scalars(select(r).where(r.status == "leased", r.lease_owner == annotator,
                                     r.lease_until >= now).order_by(r.id).limit(1)).first()


def claim(db: Database, annotator: str, queue: str | None = None,
          lease_s: int = LEASE_S) -> dict[str, Any] | None:
    """Lease the most urgent item the annotator may take; None when the queue has none.

    An annotator holds at most one live lease: claiming again returns the item already held,
    whatever `queue` asks for, with its lease as it was (not extended), so one key cannot lease
    a whole queue and lock the other annotators out. Label, skip or flag it to get the next."""
    return claim_or_held(db, annotator, queue, lease_s)[0]


def claim_or_held(db: Database, annotator: str, queue: str | None = None,
                  lease_s: int = LEASE_S) -> tuple[dict[str, Any] | None, bool]:
    """:func:`claim`, and whether it gave back the lease the annotator held, told in the claim's
    own transaction (a page reloaded has forgotten its item and cannot tell by comparing)."""
    r = RelabelItem
    if not 1 <= lease_s <= MAX_LEASE_S:
        raise AbvocError(f"'lease_s' must be from 1 to {MAX_LEASE_S} seconds")
    if queue is not None:
        check_queue(queue)  # an unknown queue is a mistake to report, not an empty queue
    for _ in range(5):
        with db.session() as s:
            now = utcnow()
            if db.dialect == "postgresql":
                # One claim per annotator at a time, so two racing claims of one key cannot
                # both find no lease held and lease two items (SQLite serialises writers).
                s.execute(select(func.pg_advisory_xact_lock(
                    CLAIM_LOCK, func.hashtext(annotator))))
            held = _live_lease(s, annotator, now)
            if held is not None:
                return item_view(s, held, output_kind(s, held.candidate, held.prediction_id)), True
            query = (select(r.id).where(_claimable(now), r.id.not_in(_seen_by(annotator)))
                     .order_by(r.priority.desc(), r.id).limit(_CANDIDATES))
            if queue is not None:
                query = query.where(r.queue == queue)
            if db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(s.scalars(query))
            if not ids:
                return None, False
            for item_id in ids:
                won = s.execute(update(r).where(r.id == item_id, _claimable(now)).values(
                    status="leased", lease_owner=annotator,
                    lease_until=now + timedelta(seconds=lease_s))).rowcount
                if won == 1:
                    item = s.get(r, item_id)
                    assert item is not None
                    s.refresh(item)
                    view = item_view(s, item, output_kind(s, item.candidate, item.prediction_id))
                    return view, False
    return None, False


def show(db: Database, item_id: int) -> dict[str, Any]:
    with db.reading() as s:
        item = _item(s, item_id)
        return item_view(s, item, output_kind(s, item.candidate, item.prediction_id))


def _item(s: Session, item_id: int, lock: bool = False) -> RelabelItem:
    query = select(RelabelItem).where(RelabelItem.id == item_id)
    if lock:
        query = query.with_for_update()
    item = s.scalars(query).first()
    if item is None:
        raise NotFound(f"relabel item {item_id} does not exist")
    return item


def _held(s: Session, item_id: int, annotator: str) -> RelabelItem:
    """The item, locked, if `annotator` holds an unexpired lease on it; else a 409 saying so."""
    item = _item(s, item_id, lock=True)
    if item.lease_owner == annotator and item.status == "leased" and not lease_live(item):
        raise Conflict(f"your lease on relabel item {item_id} ran out, so it went back to the "
                       "queue; claim an item again with POST /v1/relabel/claim")
    if not lease_live(item) or item.lease_owner != annotator:
        raise Conflict(f"relabel item {item_id} is not leased to you (status {item.status!r}); "
                       "claim an item first with POST /v1/relabel/claim")
    return item


def lease_live(item: RelabelItem) -> bool:
    """Whether someone holds the item now (leased, lease not run out)."""
    now = utcnow()
    until = as_utc(item.lease_until)
    return item.status == "leased" and until is not None and until >= now


def checked_label(kind: OutputKind, value: Any) -> str:
    """The label in the store's text form, or a 400 naming what a label of this type is. Text
    the store cannot hold is refused here: a Label Studio file (and the Annotate page's
    callback) is not read by the API's body checks, and a NUL or a lone surrogate in a text
    label failed the insert with a traceback."""
    try:
        label = value_text(check_output(kind, value), kind.type)
    except AbvocError as exc:
        raise AbvocError(exc.message.replace("'corrected_output'", "'label'"),
                         details=exc.details) from None
    if (problem := text_problem(label)) is not None:
        raise AbvocError(f"'label' {problem}")
    return label


def _correction(s: Session, prediction_id: str) -> str | None:
    return s.scalars(select(Correction.corrected_output)
                     .where(Correction.prediction_id == prediction_id)
                     .order_by(Correction.created_at, Correction.correction_id).limit(1)).first()


def _release(item: RelabelItem, status: str = "open") -> None:
    item.status, item.lease_owner, item.lease_until = status, None, None


def submit(db: Database, item_id: int, annotator: str, value: Any) -> dict[str, Any]:
    """Record the annotator's label; the item is done, waits for a second label, or goes to
    review when two labels differ."""
    with db.session() as s:
        item = _held(s, item_id, annotator)
        label = checked_label(output_kind(s, item.candidate, item.prediction_id), value)
        verdict = verdict_of(s, item, label)
        s.add(RelabelLabel(item_id=item.id, annotator=annotator, action="label", label=label,
                           verdict=verdict, created_at=utcnow()))
        s.flush()
        conclude(s, item)
        return {"item_id": item.id, "status": item.status, "label": label, "verdict": verdict}


def verdict_of(s: Session, item: RelabelItem, label: str) -> str | None:
    """`accept` when the label is the customer's correction (spacing never counts in text and
    LaTeX), `reject` when another answer, None when the prediction was not corrected."""
    corrected = _correction(s, item.prediction_id)
    if corrected is None:
        return None
    same = corrected == label or same_output(corrected, label, item_output_type(s, item))
    return "accept" if same else "reject"


def conclude(s: Session, item: RelabelItem) -> None:
    """After a label: done when enough labels agree, review when they differ, else open."""
    labels = list(s.scalars(select(RelabelLabel.label).where(
        RelabelLabel.item_id == item.id, RelabelLabel.action == "label")
        .order_by(RelabelLabel.id)))
    if item.status == "done":
        return
    if _differ(s, item, labels):
        _release(item, "review")
    elif labels and len(labels) >= item.labels_needed:
        _finish(s, item, labels[0])
    else:
        _release(item)


def conclude_imported(s: Session, item: RelabelItem, added: list[str]) -> str:
    """After labels from outside abvoc (a Label Studio import) joined the item's labels; the
    item's status now. An import holds no lease, so unlike :func:`conclude` it takes the item
    from nobody: a live lease stays with its annotator (whose label concludes the item), a
    flagged item or one in review stays for the admin; a done item stays done when the labels
    agree with its label, and goes to review when they contradict it (its label is no longer
    ground truth, so it is cleared until the admin resolves it, and so are its copies in
    other queues: :func:`feedback.cross_queue.withdraw_copies`)."""
    if not added:
        return item.status
    if item.status == "done":
        if _differ(s, item, [item.label or "", *added]):
            withdraw_copies(s, item, item.label or "")
            _release(item, "review")
            item.label = item.labeled_at = item.annotator = None
    elif item.status not in ("flagged", "review", "dropped") and not lease_live(item):
        conclude(s, item)
    return item.status


def _differ(s: Session, item: RelabelItem, labels: list[str]) -> bool:
    """Whether the labels are other answers (spacing never counts in text and LaTeX)."""
    if len(set(labels)) < 2:
        return False
    output_type = item_output_type(s, item)
    return any(not same_output(labels[0], other, output_type) for other in labels[1:])


def _finish(s: Session, item: RelabelItem, label: str) -> None:
    others, label = against_elsewhere(s, item, label)
    if others:  # another queue's truth for the input: settle it
        _release(item, "review")
        item.note = disagreement_note(label, others)
        return
    _release(item, "done")
    given = s.execute(select(RelabelLabel.annotator, RelabelLabel.created_at).where(
        RelabelLabel.item_id == item.id, RelabelLabel.action == "label")).all()
    # Labeled when its concluding label was given, not at a second reading of the clock: the
    # two fell on either side of a week's (a day's) end, and the weekly report counted the
    # item in one week and its annotator in the other.
    item.label, item.labeled_at = label, max(g.created_at for g in given)
    item.annotator = ",".join(sorted({g.annotator for g in given}))[:100]


def skip(db: Database, item_id: int, annotator: str) -> dict[str, Any]:
    """Give the item back; it stays open for others, never offered to this annotator again."""
    with db.session() as s:
        item = _held(s, item_id, annotator)
        s.add(RelabelLabel(item_id=item.id, annotator=annotator, action="skip",
                           created_at=utcnow()))
        _release(item)
        return {"item_id": item.id, "status": item.status}


def flag(db: Database, item_id: int, annotator: str, reason: str) -> dict[str, Any]:
    """Take the item out of the queue for an admin (unreadable input, wrong candidate ...)."""
    if not isinstance(reason, str) or not 0 < len(reason) <= 500:
        raise AbvocError("'reason' must be a string of 1 to 500 characters saying what is wrong")
    with db.session() as s:
        item = _held(s, item_id, annotator)
        s.add(RelabelLabel(item_id=item.id, annotator=annotator, action="flag",
                           created_at=utcnow()))
        item.note = reason
        _release(item, "flagged")
        return {"item_id": item.id, "status": item.status}


def resolve(db: Database, item_id: int, admin: str, value: Any) -> dict[str, Any]:
    """An admin's label for an item in review (labels differ) or flagged: it is done, and the
    input's done items of its type in other queues take the label (``settled``)."""
    with db.session() as s:
        item = _item(s, item_id, lock=True)
        if item.status not in ("review", "flagged"):
            raise Conflict(f"relabel item {item_id} is {item.status!r}; only items in review "
                           "or flagged are resolved")
        label = checked_label(output_kind(s, item.candidate, item.prediction_id), value)
        now = utcnow()  # one time for the resolution and what it settles (see _finish)
        s.add(RelabelLabel(item_id=item.id, annotator=admin, action="resolve", label=label,
                           created_at=now))
        _release(item, "done")
        item.label, item.labeled_at, item.annotator = label, now, admin[:100]
        # What sent it to review (or why it was flagged) is answered now: kept, it read open.
        item.note = f"resolved by {admin[:100]}"
        settled = settle(s, item, label, admin[:100], now)
        return {"item_id": item.id, "status": item.status, "label": label, "settled": settled}


def queue_figures(db: Database) -> dict[str, Any]:
    """Items per queue and status; ``leases_expired`` of the leased ones are claimable again;
    ``without_input`` of the open and leased ones are never offered (their input is gone)."""
    r = RelabelItem
    with db.reading() as s:
        rows = s.execute(select(r.queue, r.status, func.count()).group_by(r.queue, r.status))
        out: dict[str, dict[str, int]] = {}
        for queue, status, n in rows:
            out.setdefault(queue, {st: 0 for st in STATUSES})[status] = int(n)
        expired = dict(s.execute(select(r.queue, func.count()).where(
            r.status == "leased", r.lease_until < utcnow()).group_by(r.queue)).all())
        blind = dict(s.execute(select(r.queue, func.count()).where(
            r.status.in_(("open", "leased")), ~_input_kept()).group_by(r.queue)).all())
    return {"queues": [{"queue": q, "items": sum(c.values()), **c,
                        "leases_expired": int(expired.get(q, 0)),
                        "without_input": int(blind.get(q, 0))}
                       for q, c in sorted(out.items())]}
