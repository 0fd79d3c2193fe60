"""Typed labels in dataset exports (JSON strings, old unquoted rows, numbers), equal JSON labels
agreeing however their numbers are written, long text labels, and exports of one candidate or of
several whose inputs differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import (
    Candidate,
    Prediction,
    PredictionInput,
    RelabelItem,
    ServedPrediction,
)
from feedback import annotation
from feedback.export import export_snapshot
from tests.feedback.test_relabel_export import png

T0 = utcnow()
SCHEMA = {"anyOf": [{"type": "object"}, {"type": "string"}]}
PIPELINES = {"tagger": {"output": {"type": "json", "schema": SCHEMA}},
             "writer": {"output": {"type": "text"}},
             "price": {"output": {"type": "number"}},
             "extract": {"output": {"type": "json", "schema": SCHEMA}}}


def tensors(i: int) -> bytes:
    return json.dumps([{"name": "features", "datatype": "FP32", "shape": [1, 4],
                        "data": [5.0 + i, 3.5, 1.4, 0.2]}]).encode()


def item(db: Database, candidate: str, n: int, *, label: str | None = None,
         output: str = '"x"', image: bool = True, labels_needed: int = 1,
         queue: str = "training", input_hash: str | None = None) -> int:
    """A relabel item of `candidate` with a kept input; done with `label` when one is given;
    `input_hash` for an input several items share."""
    with db.session() as s:
        if s.query(Candidate).filter_by(name=candidate).first() is None:
            s.add(Candidate(name=candidate, version="1", created_at=T0, updated_at=T0,
                            pipeline=PIPELINES.get(candidate, {})))
        pid = f"{candidate}-p{n}"
        hashed = input_hash or f"h-{pid}"
        s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate=candidate,
                         input_hash=hashed, output=output, created_at=T0, slice="all",
                         output_type=PIPELINES.get(candidate, {}).get("output", {}).get("type")))
        s.add(PredictionInput(prediction_id=pid, input_hash=hashed,
                              kind="image" if image else "tensors",
                              data=png(n) if image else tensors(n), created_at=T0))
        row = RelabelItem(queue=queue, prediction_id=pid, input_hash=hashed,
                          candidate=candidate, slice="all", reasons=["audit"], priority=1.0,
                          status="done" if label is not None else "open", label=label,
                          labeled_at=T0 if label is not None else None,
                          labels_needed=labels_needed, created_at=T0)
        s.add(row)
        s.flush()
        return row.id


def manifest(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (Path(out["path"]) / "manifest.jsonl").read_text()
            .splitlines()]


def test_json_labels_export_as_their_values(db: Database, tmp_path: Path) -> None:
    stored = ['"big"', "big", '{"kind":"a","score":2}', "123", '"123"', "null"]
    for n, label in enumerate(stored):
        item(db, "tagger", n, label=label, output='"small"' if n else "small")
    item(db, "price", 0, label="16.093", output="16.0")
    out = export_snapshot(db, tmp_path, "typed")
    lines = manifest(out)
    assert [x["label"] for x in lines] == ["big", "big", {"kind": "a", "score": 2}, 123, "123",
                                           None, 16.093]
    assert [x["provenance"]["served_output"] for x in lines] == ["small"] * 6 + [16.0]


def test_equal_json_labels_agree_however_numbers_are_written(db: Database) -> None:
    item_id = item(db, "tagger", 0, labels_needed=2)
    for who, label in (("ann", {"kind": "a", "score": 2}), ("bob", {"score": 2.0, "kind": "a"})):
        claimed = annotation.claim(db, who)
        assert claimed is not None and claimed["id"] == item_id
        annotation.submit(db, item_id, who, label)
    shown = annotation.show(db, item_id)
    assert shown["status"] == "done" and shown["label"] == {"kind": "a", "score": 2}


def test_a_long_text_label_is_taken(db: Database, tmp_path: Path) -> None:
    item_id = item(db, "writer", 0, output="short")
    long = "word " * 700  # 3,500 characters: over the old 2,000
    assert annotation.claim(db, "ann") is not None
    assert annotation.submit(db, item_id, "ann", long)["status"] == "done"
    assert manifest(export_snapshot(db, tmp_path, "long"))[0]["label"] == long


def test_one_candidate_or_a_warning_for_mixed_inputs(db: Database, tmp_path: Path) -> None:
    item(db, "tagger", 0, label='"a"')
    item(db, "tagger", 1, label='"b"')
    item(db, "price", 0, label="1.5", output="1.0", image=False)
    mixed = export_snapshot(db, tmp_path, "all")
    assert mixed["examples"] == 3 and sorted(mixed["candidates"]) == ["price", "tagger"]
    assert "price: features" in mixed["warning"] and "tagger: image" in mixed["warning"]
    assert "--candidate" in mixed["warning"]
    one = export_snapshot(db, tmp_path, "tagger-only", candidate="tagger")
    assert one["examples"] == 2 and "warning" not in one and one["candidate"] == "tagger"
    assert {x["provenance"]["candidate"] for x in manifest(one)} == {"tagger"}
    priced = export_snapshot(db, tmp_path, "price-only", candidate="price")
    assert [x["inputs"] for x in manifest(priced)] == [{"features": [[5.0, 3.5, 1.4, 0.2]]}]
    with pytest.raises(AbvocError, match="unknown candidate 'pirce'.*price, tagger"):
        export_snapshot(db, tmp_path, "typo", candidate="pirce")
    assert not (tmp_path / "typo").exists()


def test_labels_of_another_output_type_are_no_conflict(db: Database, tmp_path: Path) -> None:
    """One input answered by a text candidate and by a number one, each labeled in its own type
    (items of one input are one per queue): no conflict, so a per-candidate export keeps it (it
    was dropped as a conflict); two labels of one type that disagree still are one."""
    item(db, "writer", 0, label="versicolor", output="setosa", input_hash="shared")
    item(db, "price", 0, label="2.0", output="1.0", input_hash="shared", queue="verification")
    price = export_snapshot(db, tmp_path, "price", candidate="price")
    assert price["examples"] == 1 and price["conflicts"] == 0, price
    assert manifest(price)[0]["label"] == 2.0
    item(db, "price", 1, label="3.5", output="1.0", input_hash="shared", queue="offline-test")
    with pytest.raises(AbvocError, match=r"for candidate 'price' can be written \(left out: "
                                         r"conflicts 1\); no dataset version was made$"):
        export_snapshot(db, tmp_path, "price-2", candidate="price")
    writer = export_snapshot(db, tmp_path, "writer", candidate="writer")
    assert writer["examples"] == 1 and writer["conflicts"] == 0, writer


def test_a_failed_served_answer_is_null_and_says_it_failed(db: Database,
                                                            tmp_path: Path) -> None:
    """The store keeps a failed answer as '', which read as an answer of the empty string."""
    failed = item(db, "writer", 0, label="hello", output="")
    answered = item(db, "writer", 1, label="hello", output="")  # the empty string, answered
    with db.session() as s:
        row = s.get(Prediction, "writer-p0")
        assert row is not None
        row.failed = True
    lines = {int(x["id"]): x["provenance"]
             for x in manifest(export_snapshot(db, tmp_path, "failed"))}
    assert (lines[failed]["served_output"], lines[failed]["served_failed"]) == (None, True)
    # Written only where it failed, so an export of unchanged data keeps its content hash.
    assert lines[answered]["served_output"] == "" and "served_failed" not in lines[answered]


def test_same_input_names_but_another_answer_type_are_mixed_too(db: Database,
                                                                tmp_path: Path) -> None:
    """A number candidate's and a JSON one's examples, one input name between them, were
    exported together without a word, and no candidate can read both kinds of label."""
    item(db, "price", 0, label="1.5", output="1.0", image=False)
    item(db, "extract", 0, label='{"name": "x"}', output='{"name": "y"}', image=False)
    mixed = export_snapshot(db, tmp_path, "both")
    assert "price: features, answers number" in mixed["warning"]
    assert "extract: features, answers json" in mixed["warning"]


def test_labels_keep_the_type_of_the_version_that_served_them(db: Database,
                                                               tmp_path: Path) -> None:
    """A label candidate's items, then a version 2 of it answering numbers: the export read every
    label in the newest version's type ("'setosa' is not a number", no version made)."""
    with db.session() as s:
        s.add(Candidate(name="iris", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "label", "classes": ["setosa", "other"]}}))
    item(db, "iris", 0, label="setosa", output="other", image=False)
    with db.session() as s:
        s.add(ServedPrediction(prediction_id="iris-p0", candidate="iris", version="1",
                               created_at=T0))
        s.add(Candidate(name="iris", version="2", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "number"}}))
    out = export_snapshot(db, tmp_path, "iris", candidate="iris")
    assert out["examples"] == 1 and manifest(out)[0]["label"] == "setosa"
