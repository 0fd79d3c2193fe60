"""A blamed stage's item carries what that stage trains on: a real OCR candidate's recognizer
error becomes labeled symbol crops cut from the kept input at the recorded boxes, an aligner
error a relation sample with the truth's relations, at enqueue from a correction and when an
annotator's verified label arrives; where no crop can be made the item says why."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.store.db import Database, utcnow
from core.store.models import PredictionInput, RelabelItem, RelabelSample
from evaluation.attribution import attribute, canonical, render, symbol_pairs
from evaluation.relabel_enqueue import route_label
from evaluation.stage_samples import aligner_samples, kept_image, truth_structure
from feedback import annotation
from tests.evaluation.helpers import apply, correction, prediction
from tests.evaluation.test_relabel_enqueue import rules
from workloads.ocr.dataset import BALANCED_MIX, ONLINE_MIX, Sample, generate, sample_requests
from workloads.ocr.detector import match
from workloads.ocr.pipeline import Pipeline, PredictionResult


def served(pipe: Pipeline, stage: str, n: int, chunk: int = 100
           ) -> Iterator[tuple[Sample, PredictionResult]]:
    """Online requests whose real answer the attribution blames on `stage`."""
    requests = sample_requests(n, ONLINE_MIX, seed=0)
    while batch := list(islice(requests, chunk)):
        for s, r in zip(batch, pipe.predict([s.image for s in batch]), strict=True):
            if attribute(r.latex, r.stages, s.latex) == stage:
                yield s, r


Errors = dict[str, list[tuple[Sample, PredictionResult]]]


@pytest.fixture(scope="session")
def errors(trained_models: Path) -> Errors:
    """Real errors of the trained reference candidates: two recognizer errors of the small
    printed one; an aligner error of the large one (rare once the symbols are right: its
    first is past the 900th request)."""
    printed = Pipeline.load(trained_models / "ocr-small-printed")
    large = Pipeline.load(trained_models / "ocr-large-mixed")
    out = {"recognizer": list(islice(served(printed, "recognizer", 100), 2)),
           "aligner": list(islice(served(large, "aligner", 2000), 1))}
    assert len(out["recognizer"]) == 2 and out["aligner"], "no real error of that stage"
    return out


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def record(db: Database, pid: str, s: Sample, r: PredictionResult, *, keep: bool = True,
           corrected: bool = True) -> None:
    """The served prediction as the service records it (event, kept input), corrected."""
    event = prediction(pid, output=r.latex, confidence=r.confidence, stages=r.stages)
    if keep:
        with db.session() as sess:
            sess.add(PredictionInput(prediction_id=pid, input_hash=event["input_hash"],
                                     kind="image", data=png(s.image), created_at=utcnow()))
    apply(db, [event, correction(pid, s.latex)] if corrected else [event])


def samples(db: Database, queue: str, pid: str) -> list[RelabelSample]:
    with db.session() as sess:
        item = sess.scalars(select(RelabelItem).where(RelabelItem.queue == queue,
                                                      RelabelItem.prediction_id == pid)).one()
        rows = list(sess.scalars(select(RelabelSample).where(RelabelSample.item_id == item.id)
                                 .order_by(RelabelSample.symbol)))
        sess.expunge_all()
        return rows


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def true_class_at(s: Sample, box: list[int]) -> str:
    """The generator's own class for the symbol at a detected box (an oracle independent of
    the reading-order pairing the samples use)."""
    hit = match([tuple(box)], s.boxes)
    (ti,) = [t for t, p in hit.items() if p == 0]
    return s.classes[ti]


def check_crops(rows: list[RelabelSample], s: Sample, r: PredictionResult, pid: str) -> None:
    boxes, classes = r.stages["detector"]["boxes"], r.stages["recognizer"]["classes"]
    assert rows and all(row.kind == "crop" for row in rows)
    for row in rows:
        x0, y0, x1, y1 = boxes[row.symbol]
        assert row.sample["box"] == [x0, y0, x1, y1]
        cx0, cy0, cx1, cy1 = row.sample["box_in_crop"]
        crop = decode(row.image or b"")
        # The crop's box region is exactly the input's region at the recorded box.
        np.testing.assert_array_equal(crop[cy0:cy1, cx0:cx1], s.image[y0:y1, x0:x1])
        assert crop.shape[0] > y1 - y0 and crop.shape[1] > x1 - x0  # with a margin of paper
        assert row.label == true_class_at(s, boxes[row.symbol]) != row.predicted
        assert row.predicted == classes[row.symbol]
        assert (row.prediction_id, row.input_hash) == (pid, pid[:16])


def test_a_recognizer_error_becomes_labeled_symbol_crops(
        db: Database, errors: Errors) -> None:
    rules(db)
    s, r = errors["recognizer"][0]
    record(db, "rec-1" + "0" * 12, s, r)
    check_crops(samples(db, "stage:recognizer", "rec-1" + "0" * 12), s, r, "rec-1" + "0" * 12)
    with db.session() as sess:
        item_id = sess.scalars(select(RelabelItem.id).where(
            RelabelItem.queue == "stage:recognizer")).one()
    shown = annotation.show(db, item_id)["stage_samples"]
    assert shown and shown[0]["kind"] == "crop" and shown[0]["image"]["data_base64"]
    assert shown[0]["label"] != shown[0]["predicted"]


def test_an_aligner_error_becomes_a_relation_sample(
        db: Database, errors: Errors) -> None:
    rules(db)
    s, r = errors["aligner"][0]
    pid = "ali-1" + "0" * 12
    record(db, pid, s, r, keep=False)  # a relation sample needs no pixels
    (row,) = samples(db, "stage:aligner", pid)
    assert row.kind == "relations" and row.label == s.latex
    got = row.sample
    assert got["classes"] == r.stages["recognizer"]["classes"]
    assert got["boxes"] == r.stages["detector"]["boxes"]
    assert render(got["classes"], got["relations"]) == canonical(s.latex)
    assert got["relations"] != [rel[:2] for rel in r.stages["aligner"]["relations"]]
    # Against the generator's own relations, through the box each true symbol was found at.
    hit = match(got["boxes"], s.boxes)
    assert len(hit) == len(s.boxes)
    for t, d in hit.items():
        parent, rel = s.relations[t]
        assert got["relations"][d] == [hit[parent] if parent >= 0 else -1, rel]


def test_without_the_kept_input_the_item_is_whole_with_a_reason(
        db: Database, errors: Errors) -> None:
    rules(db)
    s, r = errors["recognizer"][0]
    record(db, "gone" + "0" * 12, s, r, keep=False)
    (row,) = samples(db, "stage:recognizer", "gone" + "0" * 12)
    assert row.kind == "whole" and row.image is None
    assert "no longer kept" in (row.reason or "") and "ABVOC_INPUT_RETENTION_HOURS" in row.reason


def test_a_verified_label_brings_its_crops(db: Database, errors: Errors) -> None:
    rules(db, audit_rate=1.0)
    s, r = errors["recognizer"][1]
    pid = "lab-1" + "0" * 12
    record(db, pid, s, r, corrected=False)
    item = annotation.claim(db, "ann")
    assert item is not None and item["queue"] == "offline-test"
    annotation.submit(db, item["id"], "ann", s.latex)
    with db.session() as sess:
        assert route_label(sess, item["id"]) == "stage:recognizer"
    check_crops(samples(db, "stage:recognizer", pid), s, r, pid)
    with db.session() as sess:  # routed again: the same samples, once each
        route_label(sess, item["id"])
    check_crops(samples(db, "stage:recognizer", pid), s, r, pid)


def stages_of(s: Sample) -> dict[str, Any]:
    return {"detector": {"boxes": [list(b) for b in s.boxes]},
            "recognizer": {"classes": s.classes},
            "aligner": {"relations": [[p, rel, 1.0] for p, rel in s.relations]}}


def test_truth_relations_are_the_generators() -> None:
    """Parsed from the LaTeX alone, the relations are the ones the formula was drawn from."""
    for s in generate(120, BALANCED_MIX, seed=5, split="validation"):
        (row,) = aligner_samples(stages_of(s), s.latex)
        assert row["kind"] == "relations", (s.latex, row["reason"])
        assert row["sample"]["relations"] == [[p, rel] for p, rel in s.relations], s.latex


def test_pairs_follow_reading_order_and_say_why_not() -> None:
    # A fraction: the bar reads first, then the numerator and the denominator.
    stages = {"recognizer": {"classes": ["b", "-", "a"]},
              "aligner": {"relations": [[1, "den"], [-1, "start"], [1, "num"]]}}
    pairs = symbol_pairs(stages["recognizer"]["classes"], stages["aligner"]["relations"],
                         "\\frac{x}{b}")
    assert pairs == [(1, "-"), (2, "x"), (0, "b")]
    assert "found 2 symbols" in str(symbol_pairs(["x", "2"], [], "x^{2}+1"))
    assert "structure is not the truth's" in str(
        symbol_pairs(["x", "y"], [[-1, "start"], [0, "right"]], "x^{2}"))
    with pytest.raises(ValueError, match="without a base"):
        truth_structure("^{2}")


def test_the_kept_input_reads_back_from_an_image_or_a_uint8_tensor(db: Database) -> None:
    image = np.arange(60, dtype=np.uint8).reshape(6, 10)
    tensors = [{"name": "scale", "datatype": "FP32", "shape": [1], "data": [1.0]},
               {"name": "image", "datatype": "UINT8", "shape": [6, 10],
                "data": image.ravel().tolist()}]
    with db.session() as sess:
        sess.add(PredictionInput(prediction_id="a", input_hash="ha", kind="image",
                                 data=png(image), created_at=utcnow()))
        deep = io.BytesIO()  # 16-bit gray: read as decode_image served it, not clipped white
        Image.fromarray(image.astype(np.uint16) * 257).save(deep, format="PNG")
        sess.add(PredictionInput(prediction_id="c", input_hash="hc", kind="image",
                                 data=deep.getvalue(), created_at=utcnow()))
        sess.add(PredictionInput(prediction_id="b", input_hash="hb", kind="tensors",
                                 data=json.dumps(tensors).encode(), created_at=utcnow()))
    with db.session() as sess:
        np.testing.assert_array_equal(kept_image(sess, "ha"), image)
        np.testing.assert_array_equal(kept_image(sess, "hb"), image)
        np.testing.assert_array_equal(kept_image(sess, "hc"), image)
        assert kept_image(sess, "gone") is None and kept_image(sess, None) is None
