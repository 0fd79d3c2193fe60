"""The stage datasets of an export: a verified recognizer error's symbol crops are written as
PNGs with a labels file that the recognizer's training reader loads into the very inputs the
recognizer saw; relation samples as JSONL the aligner's training reads; an item without
samples stays a whole input that says why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.store.db import Database, utcnow
from core.store.models import PredictionInput, RelabelItem
from evaluation.relabel_enqueue import route_label
from feedback import annotation
from feedback.export import export_snapshot
from tests.evaluation.helpers import apply, correction, prediction
from tests.evaluation.test_relabel_enqueue import rules
from tests.evaluation.test_stage_samples import Errors, errors, png, record  # noqa: F401
from workloads.ocr.aligner import relation_examples
from workloads.ocr.detector import detect
from workloads.ocr.formulas import CLASS_INDEX
from workloads.ocr.recognizer import crop_tensor
from workloads.ocr.relabeled import read_relation_samples, read_symbol_crops


def verify(db: Database, queue: str, label: str) -> None:
    """An annotator confirms the stage item's truth; the API then routes the done label."""
    item = annotation.claim(db, "ann", queue=queue)
    assert item is not None
    annotation.submit(db, item["id"], "ann", label)
    with db.session() as s:
        route_label(s, item["id"])


def test_symbol_crops_round_trip_into_the_recognizers_training_data(
        db: Database, errors: Errors, tmp_path: Path) -> None:  # noqa: F811
    rules(db)
    (s1, r1), (s2, r2) = errors["recognizer"]
    record(db, "exp-1" + "0" * 12, s1, r1)
    record(db, "exp-2" + "0" * 12, s2, r2, keep=False)  # no input kept: the whole, with why
    verify(db, "stage:recognizer", s1.latex)
    # An item without its input is never offered (it would be labeled blind); one a store
    # labeled before that rule is still exported as far as it can be, and counted.
    assert annotation.claim(db, "ann2", queue="stage:recognizer") is None
    with db.session() as sess:
        blind = sess.scalars(select(RelabelItem).where(
            RelabelItem.queue == "stage:recognizer", RelabelItem.status == "open")).one()
        blind.status, blind.label, blind.annotator = "done", s2.latex, "ann"
        blind.labeled_at = utcnow()
    with db.session() as sess:
        route_label(sess, blind.id)
    out = export_snapshot(db, tmp_path, "symbols", ["stage:recognizer"])
    folder = Path(out["path"])
    with (folder / "symbol_labels.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert out["crops"] == len(rows) > 0
    assert {row["prediction_id"] for row in rows} == {"exp-1" + "0" * 12}
    crops = read_symbol_crops(folder)
    assert crops.x.shape == (len(rows), 1, 32, 32)
    assert crops.y.tolist() == [CLASS_INDEX[row["label"]] for row in rows]
    # Each crop reads back as the input the recognizer got in service for that symbol.
    patches = detect(s1.image).patches
    for k, row in enumerate(rows):
        np.testing.assert_array_equal(crops.x[k, 0], crop_tensor(patches[int(row["symbol"])]))
    # The second item has no crop and no input to write whole: counted, not silently gone.
    assert (folder / "manifest.jsonl").read_text() == ""
    assert out["stage_whole_inputs"] == 1 and out["without_input"] == 1
    again = export_snapshot(db, tmp_path, "symbols", ["stage:recognizer"])
    assert again["unchanged"] and again["crops"] == len(rows)  # one crop per input and symbol


def test_relation_samples_round_trip_into_the_aligners_training_data(
        db: Database, errors: Errors, tmp_path: Path) -> None:  # noqa: F811
    rules(db)
    ((s, r),) = errors["aligner"]
    record(db, "rel-1" + "0" * 12, s, r)
    verify(db, "stage:aligner", s.latex)
    with db.session() as sess:
        assert sess.scalars(select(RelabelItem.status).where(
            RelabelItem.queue == "stage:aligner")).one() == "done"
    out = export_snapshot(db, tmp_path, "relations", ["stage:aligner"])
    (sample,) = read_relation_samples(out["path"])
    assert sample.classes == r.stages["recognizer"]["classes"] and sample.latex == s.latex
    features, labels = relation_examples([sample])
    assert len(features) == len(labels) > 0


def test_a_stage_item_without_samples_is_a_whole_input_that_says_why(
        db: Database, tmp_path: Path) -> None:
    rules(db)
    stages = {"detector": {"boxes": [[1, 1, 5, 5], [6, 1, 8, 3]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "start", 1.0], [0, "sup", 0.9]]}}
    pid = "whole-1" + "0" * 12
    event = prediction(pid, output="x^{2}", stages=stages)
    with db.session() as s:
        s.add(PredictionInput(prediction_id=pid, input_hash=event["input_hash"], kind="image",
                              data=png(np.full((10, 12), 255, np.uint8)), created_at=utcnow()))
    apply(db, [event, correction(pid, "\\sqrt{y}")])  # the structure differs: no pairing
    verify(db, "stage:recognizer", "\\sqrt{y}")
    out = export_snapshot(db, tmp_path, "whole", ["stage:recognizer"])
    (line,) = [json.loads(x) for x in (Path(out["path"]) / "manifest.jsonl").read_text()
               .splitlines()]
    assert "structure is not the truth's" in line["stage_sample"]["reason"]
    assert line["inputs"]["image"]["file"] and out["crops"] == 0
    assert out["stage_whole_inputs"] == 1 and out["examples"] == 1


def test_export_file_names_never_leave_the_folder() -> None:
    from feedback.stage_export import file_stem

    digest = "0123456789abcdef" * 2
    assert file_stem(digest) == digest  # the service's own hashes name their files
    for hostile in ("../../etc/passwd", "/abs", "a/b", "..", "\ud800", "ABC"):
        stem = file_stem(hostile)
        assert len(stem) == 64 and set(stem) <= set("0123456789abcdef"), hostile
