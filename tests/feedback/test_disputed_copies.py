"""A done label that a Label Studio import disputes stops being ground truth everywhere it was
copied: the blamed stage's item that route_label made done from it goes back to open,
unlabeled, until the admin's resolution routes the resolved label again (it stayed done, so
the results, the divergence, the Inspector and the stage export kept the disputed truth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store.db import Database
from core.store.models import RelabelItem, RelabelSample
from core.verified_labels import typed_labels, verified_label
from evaluation.relabel_enqueue import route_label
from feedback import annotation
from feedback.label_studio import import_tasks
from tests.evaluation.helpers import apply, correction, prediction
from tests.evaluation.test_relabel_enqueue import rules
from tests.support.kept_inputs import keep_input

STAGES = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
          "recognizer": {"classes": ["x", "2"]},
          "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}


def queue_item(db: Database, queue: str, pid: str) -> RelabelItem:
    with db.reading() as s:
        item = s.scalars(select(RelabelItem).where(RelabelItem.queue == queue,
                                                   RelabelItem.prediction_id == pid)).one()
        s.expunge(item)
        return item


def labeled(db: Database, queue: str, pid: str, label: str) -> int:
    """An annotator's label of the queue's item, routed as the API routes a done label."""
    item = annotation.claim(db, f"ann-{pid}", queue=queue)
    assert item is not None and item["prediction_id"] == pid
    assert annotation.submit(db, item["id"], f"ann-{pid}", label)["status"] == "done"
    with db.session() as s:
        route_label(s, item["id"])
    return item["id"]


def dispute(db: Database, folder: Path, item_id: int, label: str) -> dict:
    folder.mkdir()
    (folder / "tasks.json").write_text(json.dumps([{
        "data": {"abvoc_item_id": item_id}, "annotations": [{"completed_by": 50, "result": [
            {"from_name": "label", "to_name": "input", "type": "textarea",
             "value": {"text": [label]}}]}]}]))
    return import_tasks(db, folder, on_done=route_label)


@pytest.mark.parametrize("source", ["verification", "offline-test"])
def test_a_disputed_label_withdraws_its_stage_copy_until_the_resolution(
        db: Database, tmp_path: Path, source: str) -> None:
    """verification: the correction enqueued the stage item, the label made it done;
    offline-test: the audited answer's label made the stage item itself."""
    rules(db, audit_rate=1.0 if source == "offline-test" else 0.0)
    events = [prediction("o1", output="x^{2}", stages=STAGES)]
    if source == "verification":
        events.append(correction("o1", "y^{2}"))
    with db.session() as s:
        keep_input(s, "o1", events[0]["input_hash"], kind="image")
    apply(db, events)
    source_id = labeled(db, source, "o1", "y^{2}")
    copy = queue_item(db, "stage:recognizer", "o1")
    assert (copy.status, copy.label) == ("done", "y^{2}")
    with db.reading() as s:
        assert s.scalars(select(RelabelSample).where(RelabelSample.item_id == copy.id)).all()

    out = dispute(db, tmp_path / "imp", source_id, "z^{2}")
    assert out["disputed"] == 1
    copy = queue_item(db, "stage:recognizer", "o1")
    assert (copy.status, copy.label, copy.annotator, copy.labeled_at) == (
        "open", None, None, None)
    assert f"copied from item {source_id}" in (copy.note or "")
    with db.reading() as s:  # no input of that type has a truth now, in any queue
        assert typed_labels(s) == {}
        assert verified_label(s, "o1") is None
        assert s.scalars(select(RelabelSample).where(RelabelSample.item_id == copy.id)).all() \
            == []

    assert annotation.resolve(db, source_id, "admin", "z^{2}")["status"] == "done"
    with db.session() as s:  # as the API routes a resolution
        assert route_label(s, source_id) == "stage:recognizer"
    copy = queue_item(db, "stage:recognizer", "o1")
    assert (copy.status, copy.label, copy.annotator, copy.note) == (
        "done", "z^{2}", "admin", None)
    with db.reading() as s:
        assert verified_label(s, "o1") == "z^{2}"


def test_a_stage_item_its_own_annotator_labeled_is_not_a_copy(db: Database,
                                                              tmp_path: Path) -> None:
    """Only copies are withdrawn: a stage label an annotator gave stays theirs (and the
    disagreement is the admin's to settle)."""
    rules(db)
    events = [prediction("o2", output="x^{2}", stages=STAGES), correction("o2", "y^{2}")]
    with db.session() as s:
        keep_input(s, "o2", events[0]["input_hash"], kind="image")
    apply(db, events)
    labeled(db, "stage:recognizer", "o2", "y^{2}")
    source_id = labeled(db, "verification", "o2", "y^{2}")
    assert dispute(db, tmp_path / "imp", source_id, "z^{2}")["disputed"] == 1
    own = queue_item(db, "stage:recognizer", "o2")
    assert (own.status, own.label) == ("done", "y^{2}")
