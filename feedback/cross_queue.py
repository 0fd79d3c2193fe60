"""One truth per input and output type across the queues: an item whose agreed label disagrees
with a done item of the same input and type in another queue goes to review instead of done
(its exports left such inputs out with a bare count, and nobody was asked to settle them), and
an admin's resolution settles the input in every queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.same_answer import same_output
from core.store.db import utcnow
from core.store.models import RelabelItem, RelabelLabel
from core.verified_labels import item_type


def item_output_type(s: Session, item: RelabelItem) -> str:
    """The output type `item`'s labels have, as the exports' conflict rule reads it."""
    return s.scalar(select(item_type(s)).where(RelabelItem.id == item.id))


def done_elsewhere(s: Session, item: RelabelItem,
                   output_type: str | None = None) -> list[RelabelItem]:
    """Done items of `item`'s input and output type (`output_type`, when the caller has read
    it) in other queues."""
    if not item.input_hash:
        return []
    r = RelabelItem
    own = output_type if output_type is not None else item_output_type(s, item)
    return list(s.scalars(select(r).where(
        r.input_hash == item.input_hash, r.id != item.id, r.status == "done",
        r.label.is_not(None), item_type(s) == own).order_by(r.id)))


def against_elsewhere(s: Session, item: RelabelItem, label: str) -> tuple[list[RelabelItem], str]:
    """The done items of `item`'s input and output type in other queues whose label is another
    answer (spacing never counts in text and LaTeX: core.same_answer), and `label` as the
    others already write it (one string per input and type, as the exports compare them)."""
    output_type = item_output_type(s, item)
    elsewhere = done_elsewhere(s, item, output_type)
    others = [o for o in elsewhere if not same_output(o.label or "", label, output_type)]
    written = elsewhere[0].label if elsewhere and not others else None
    return others, label if written is None else written  # "" is a text label too


def disagreement_note(label: str, others: list[RelabelItem]) -> str:
    """Why the item waits for an admin: the labels it disagrees with, and where."""
    shown = ", ".join(f"item {o.id} in {o.queue} says {o.label!r}" for o in others[:5])
    return (f"its label {label!r} disagrees with the input's done label elsewhere ({shown}); "
            "resolving it settles the input in every queue")[:2000]


def settle(s: Session, item: RelabelItem, label: str, admin: str,
           at: datetime | None = None) -> list[int]:
    """Give the other queues' done items of this input and type the admin's label as written
    (one string per input and type, which the exports' conflict rule compares); their ids.
    `at`: the resolution's time (default: now), each label's and each item's `labeled_at`."""
    settled = []
    now = at or utcnow()
    for other in done_elsewhere(s, item):
        if other.label == label:
            continue
        s.add(RelabelLabel(item_id=other.id, annotator=admin, action="resolve", label=label,
                           created_at=now))
        other.label, other.labeled_at = label, now
        other.note = f"settled by the resolution of item {item.id}"
        settled.append(other.id)
    return settled
