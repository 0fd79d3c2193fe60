"""Labels of text and LaTeX agree as exact match judges answers: spacing never counts. Two
annotators who wrote one formula with other spacing sent the item to review, a label that
repeats the customer's correction with other spacing was a "reject" of it, and a Label Studio
label with other spacing contradicted a done item. Found by a pass over the relabel loop."""

from __future__ import annotations

from pathlib import Path

from core.store.db import Database, utcnow
from core.store.models import Candidate, Correction, Prediction, RelabelItem
from core.verified_labels import conflicting_labels
from feedback import annotation
from feedback.label_studio import import_tasks
from tests.feedback.test_label_studio_import import write
from tests.support.kept_inputs import keep_input

T0 = utcnow()


def formula_item(db: Database, n: int, *, output_type: str = "latex", queue: str = "verification",
                 labels_needed: int = 1, corrected: str | None = None,
                 input_hash: str | None = None) -> int:
    """An open item of a prediction answered "37+7+9", corrected to `corrected` if given."""
    with db.session() as s:
        if s.get(Candidate, 1) is None:
            s.add(Candidate(id=1, name="reader", version="1", created_at=T0, updated_at=T0,
                            pipeline={"output": {"type": output_type}}))
        pid = f"p{n}"
        s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate="reader",
                         input_hash=input_hash or f"h-{pid}", output="37+7+9",
                         output_type=output_type, created_at=T0, slice="all"))
        keep_input(s, pid, input_hash or f"h-{pid}", kind="image")
        if corrected is not None:
            s.add(Correction(correction_id=f"c-{pid}", event_id=f"ce-{pid}", prediction_id=pid,
                             corrected_output=corrected, created_at=T0))
        item = RelabelItem(queue=queue, prediction_id=pid, input_hash=input_hash or f"h-{pid}",
                           candidate="reader", slice="all", reasons=["correction"],
                           priority=1.0, status="open", labels_needed=labels_needed,
                           created_at=T0)
        s.add(item)
        s.flush()
        return item.id


def label(db: Database, item_id: int, who: str, value: str) -> dict:
    claimed = annotation.claim(db, who)
    assert claimed is not None and claimed["id"] == item_id, claimed
    return annotation.submit(db, item_id, who, value)


def test_two_spacings_of_one_formula_agree_and_accept_the_correction(db: Database) -> None:
    item_id = formula_item(db, 0, labels_needed=2, corrected="37+7+8")
    first = label(db, item_id, "alice", "37+7+8")
    assert (first["status"], first["verdict"]) == ("open", "accept")
    second = label(db, item_id, "bob", "37 + 7 + 8")
    assert (second["status"], second["verdict"]) == ("done", "accept")
    assert annotation.show(db, item_id)["label"] == "37+7+8"
    other = formula_item(db, 1, labels_needed=2, corrected="37+7+8")
    label(db, other, "alice", "37+7+8")
    assert label(db, other, "bob", "37+7+6")["status"] == "review"  # another answer still is


def test_text_labels_agree_whatever_their_spacing(db: Database) -> None:
    item_id = formula_item(db, 0, output_type="text", labels_needed=2, corrected="hello  world")
    label(db, item_id, "alice", "hello world")
    done = label(db, item_id, "bob", " hello world ")
    assert (done["status"], done["verdict"]) == ("done", "accept")


def test_another_queues_label_with_other_spacing_is_the_same_truth(db: Database) -> None:
    """Agreeing across queues, the item takes the input's label as already written, so the
    exports' conflict rule (one label string per input and type) finds no conflict."""
    first = formula_item(db, 0, input_hash="shared")
    second = formula_item(db, 1, queue="offline-test", input_hash="shared")
    assert label(db, first, "alice", "37+7+8")["status"] == "done"
    assert label(db, second, "bob", "37 + 7 + 8")["status"] == "done"
    assert annotation.show(db, second)["label"] == "37+7+8"
    with db.reading() as s:
        assert conflicting_labels(s) == set()


def test_an_imported_label_with_other_spacing_keeps_a_done_item_done(db: Database,
                                                                     tmp_path: Path) -> None:
    item_id = formula_item(db, 0)
    label(db, item_id, "alice", "37+7+8")
    said = {"from_name": "label", "to_name": "input", "type": "textarea",
            "value": {"text": ["37 + 7 + 8"]}}
    out = import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": item_id},
         "annotations": [{"completed_by": "zed", "result": [said]}]}]))
    assert out["labels"] == 1 and out["disputed"] == 0
    assert annotation.show(db, item_id)["status"] == "done"
