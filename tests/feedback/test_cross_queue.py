"""One truth per input across the queues: an agreed label that disagrees with the input's done
label in another queue sends the item to review with a note naming the other, instead of
leaving two done labels whose input every export then dropped with a bare count; an admin's
resolution settles the input in every queue. Found by a pass over the relabel loop."""

from __future__ import annotations

from sqlalchemy import update

from core.store.db import Database
from core.store.models import RelabelItem
from core.verified_labels import conflicting_labels
from feedback import annotation, queue_listing
from tests.feedback.test_relabel_annotation import add_items


def _one_input_in_two_queues(db: Database) -> tuple[int, int]:
    (first,) = add_items(db, 1, queue="verification")
    (second,) = add_items(db, 1, queue="offline-test")
    with db.session() as s:  # the same input, queued for two reasons
        s.execute(update(RelabelItem).where(RelabelItem.id == second)
                  .values(input_hash="h-verification-p0"))
    return first, second


def _label(db: Database, item_id: int, label: str, who: str = "ann") -> dict:
    claimed = annotation.claim(db, who)
    assert claimed is not None and claimed["id"] == item_id, claimed
    return annotation.submit(db, item_id, who, label)


def test_a_label_that_disagrees_with_another_queue_goes_to_review(db: Database) -> None:
    first, second = _one_input_in_two_queues(db)
    assert _label(db, first, "dog")["status"] == "done"
    assert _label(db, second, "owl")["status"] == "review"
    (waiting,) = queue_listing.listing(db, "review")
    assert waiting["id"] == second
    assert f"item {first} in verification says 'dog'" in waiting["note"]
    with db.reading() as s:
        assert conflicting_labels(s) == set()  # one done label: no conflict for exports

    settled = annotation.resolve(db, second, "admin", "owl")
    assert settled["status"] == "done" and settled["settled"] == [first]
    assert annotation.show(db, first)["label"] == "owl"
    # The note that sent it to review no longer says it is to be resolved.
    assert annotation.show(db, second)["note"] == "resolved by admin"
    with db.reading() as s:
        assert conflicting_labels(s) == set()


def test_an_agreeing_label_in_another_queue_is_done(db: Database) -> None:
    first, second = _one_input_in_two_queues(db)
    _label(db, first, "dog")
    assert _label(db, second, "dog")["status"] == "done"
    assert queue_listing.listing(db, "review") == []
