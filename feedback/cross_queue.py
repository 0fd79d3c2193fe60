"""One truth per input and output type across the queues: an item whose agreed label disagrees
with a done item of the same input and type in another queue goes to review instead of done
(its exports left such inputs out with a bare count, and nobody was asked to settle them), and
an admin's resolution settles the input in every queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.same_answer import same_output
from core.store.db import utcnow
from core.store.models import RelabelItem, RelabelLabel, RelabelSample
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


def withdraw_copies(s: Session, item: RelabelItem, label: str) -> list[int]:
    """When `item`'s `label` stops being ground truth (it went to review), take back the done
    items of its input and type that only copied it: no annotator labeled them (a stage
    queue's item that evaluation.relabel_enqueue.route_label made done, or one a resolution
    settled). Left done, a copy stayed the input's truth (results, divergence, the Inspector,
    the stage export) while its source waited for the admin. Each goes back to ``open``,
    unlabeled, its samples (cut from that label) deleted; the admin's resolution of `item`
    routes its label again. Their ids."""
    output_type = item_output_type(s, item)
    withdrawn = []
    for other in done_elsewhere(s, item, output_type):
        labeled = s.scalar(select(RelabelLabel.id).where(
            RelabelLabel.item_id == other.id, RelabelLabel.action == "label").limit(1))
        if labeled is not None or not same_output(other.label or "", label, output_type):
            continue
        other.status, other.lease_owner, other.lease_until = "open", None, None
        other.label = other.labeled_at = other.annotator = None
        other.note = (f"withdrawn: its label {label!r} was copied from item {item.id}, which "
                      "went to review; the resolution routes the label again")[:2000]
        s.execute(delete(RelabelSample).where(RelabelSample.item_id == other.id))
        withdrawn.append(other.id)
    return withdrawn
