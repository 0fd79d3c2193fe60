"""One truth per input and output type across the queues: an item whose agreed label disagrees
with a done item of the same input and type in another queue goes to review instead of done
(its exports left such inputs out with a bare count, and nobody was asked to settle them), and
an admin's resolution settles the input in every queue."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.db import utcnow
from core.store.models import RelabelItem, RelabelLabel
from core.verified_labels import item_type


def disagreeing(s: Session, item: RelabelItem, label: str) -> list[RelabelItem]:
    """Done items of `item`'s input and output type in other queues labeled otherwise."""
    if not item.input_hash:
        return []
    r = RelabelItem
    typed = item_type(s)
    own = s.scalar(select(typed).where(r.id == item.id))
    return list(s.scalars(select(r).where(
        r.input_hash == item.input_hash, r.id != item.id, r.status == "done",
        r.label.is_not(None), r.label != label, typed == own).order_by(r.id)))


def disagreement_note(label: str, others: list[RelabelItem]) -> str:
    """Why the item waits for an admin: the labels it disagrees with, and where."""
    shown = ", ".join(f"item {o.id} in {o.queue} says {o.label!r}" for o in others[:5])
    return (f"its label {label!r} disagrees with the input's done label elsewhere ({shown}); "
            "resolving it settles the input in every queue")[:2000]


def settle(s: Session, item: RelabelItem, label: str, admin: str) -> list[int]:
    """Give the other queues' done items of this input and type the admin's label; their ids."""
    settled = []
    for other in disagreeing(s, item, label):
        s.add(RelabelLabel(item_id=other.id, annotator=admin, action="resolve", label=label,
                           created_at=utcnow()))
        other.label, other.labeled_at = label, utcnow()
        other.note = f"settled by the resolution of item {item.id}"
        settled.append(other.id)
    return settled
