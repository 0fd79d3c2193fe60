"""New data in a Label Studio import (a task without ``abvoc_item_id``): the item of its image
in the import's queue, made when the queue has none, or the one there already, whose labels
must then be answers of the same output type as the import's."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import AbvocError
from core.output_types import OutputKind
from core.relabel import share_of
from core.store.db import utcnow
from core.store.models import PredictionInput, RelabelItem
from feedback.annotation import output_kind


def image_digest(image: bytes) -> str:
    """The input hash an imported image's item and kept input carry."""
    return hashlib.sha256(image).hexdigest()[:32]


def check_same_answers(s: Session, where: str, image: bytes, queue: str,
                       candidate: str | None, kind: OutputKind) -> None:
    """A 400 when `queue` already holds this image as the item of answers of another output
    type (another candidate's, or a served input's): its labels, checked as `candidate`'s,
    joined that item and stored a text label on a label candidate's item, sending a done item
    to review."""
    held = s.scalars(select(RelabelItem).where(
        RelabelItem.queue == queue, RelabelItem.input_hash == image_digest(image))
        .order_by(RelabelItem.id).limit(1)).first()
    if held is None:
        return
    theirs = output_kind(s, held.candidate, held.prediction_id)
    if (theirs.type, sorted(set(theirs.classes))) == (kind.type, sorted(set(kind.classes))):
        return
    raise AbvocError(f"{where}: this image is already item {held.id} of queue {queue!r}, "
                     f"whose labels are candidate {held.candidate!r}'s {theirs.type} answers, "
                     f"not {candidate!r}'s {kind.type} ones; an input has one item per queue: "
                     "import it into another queue (--queue) or for that candidate")


def new_item(s: Session, image: bytes | None, queue: str, candidate: str | None,
             share: float) -> tuple[RelabelItem, bool]:
    """The item of an imported image in `queue` (the one there already, if any), and whether it
    is new; it needs a second label by the rules' ``second_annotator_share``, as at enqueue.
    An import of the same data at the same time may insert it first: it is then read again."""
    assert image is not None
    digest = image_digest(image)
    pid = f"import:{digest}"
    for _ in range(3):
        existing = s.scalars(select(RelabelItem).where(
            RelabelItem.queue == queue, RelabelItem.input_hash == digest).with_for_update()).first()
        if existing is not None:
            return existing, False
        second = share_of("second", digest) < share  # evaluation/relabel_enqueue.py _store's rule
        try:
            with s.begin_nested():  # the other import's rows win the unique keys: ours go
                if s.get(PredictionInput, pid) is None:
                    s.add(PredictionInput(prediction_id=pid, input_hash=digest, kind="image",
                                          data=image, created_at=utcnow()))
                item = RelabelItem(queue=queue, prediction_id=pid, input_hash=digest,
                                   candidate=candidate, reasons=["imported"], reason="imported",
                                   priority=0.0, status="open",
                                   labels_needed=2 if second else 1, created_at=utcnow())
                s.add(item)
                s.flush()
            return item, True
        except IntegrityError:
            continue  # committed by the other import now: its item, or its input only
    raise AbvocError("another import stored the same new data at the same time; nothing of "
                     "this import was stored: run it again")
