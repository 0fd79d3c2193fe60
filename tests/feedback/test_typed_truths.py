"""One input's labels: one truth per output type. Two types' labels of an input are two
examples of a dataset, not a duplicate; an empty text label is a label (the input holds no
text), taken in the form the other queues write it; and two labels that agree by the spacing
rule agree in the agreement report too."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import Candidate, Correction, Prediction, RelabelItem
from core.verified_labels import conflicting_labels
from dashboards.pages import annotate
from feedback import annotation
from feedback.agreement import agreement
from feedback.export import export_snapshot
from feedback.label_studio import import_tasks
from tests.feedback.test_label_spacing import formula_item, label
from tests.feedback.test_label_studio_import import other_item, write
from tests.support.kept_inputs import keep_input

T0 = utcnow()


def test_two_types_labels_of_one_input_are_both_exported(db: Database, tmp_path: Path) -> None:
    """Keyed by input alone, the number label was dropped as a duplicate of the class one."""
    with db.session() as s:
        s.add(Candidate(id=1, name="pets", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "label", "classes": ["cat", "dog"]}}))
        s.add(Candidate(id=2, name="counter", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "number"}}))
        for pid, candidate, out, kind, queue in (
                ("pa", "pets", "cat", "label", "verification"),
                ("pb", "counter", "3.0", "number", "offline-test")):
            s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate=candidate,
                             input_hash="shared", output=out, output_type=kind, created_at=T0,
                             slice="all"))
            keep_input(s, pid, "shared", kind="image")
            s.add(RelabelItem(queue=queue, prediction_id=pid, input_hash="shared",
                              candidate=candidate, slice="all", reasons=["x"], priority=1.0,
                              status="open", labels_needed=1, created_at=T0))
    for _ in range(2):
        item = annotation.claim(db, "alice")
        assert item is not None
        annotation.submit(db, item["id"], "alice", "dog" if item["output_type"] == "label" else 4)
    out = export_snapshot(db, tmp_path / "ds", "both")
    lines = (Path(out["path"]) / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 2 and out["duplicates"] == 0, out
    assert sorted(out["candidates"]) == ["counter", "pets"], out


def test_an_empty_text_label_is_the_form_another_queue_takes(db: Database,
                                                              tmp_path: Path) -> None:
    """'' read as no label: the second queue kept '  ', and the input became a conflict that
    no one was asked to resolve (both items done), left out of the export."""
    first = formula_item(db, 0, output_type="text", input_hash="shared")
    second = formula_item(db, 1, output_type="text", queue="offline-test", input_hash="shared")
    assert label(db, first, "alice", "")["status"] == "done"
    assert label(db, second, "bob", "  ")["status"] == "done"
    assert annotation.show(db, second)["label"] == ""
    with db.reading() as s:
        assert not conflicting_labels(s)
    assert export_snapshot(db, tmp_path / "ds", "t")["conflicts"] == 0


def test_labels_that_agree_by_spacing_agree_in_the_report(db: Database) -> None:
    item_id = formula_item(db, 0, labels_needed=2, corrected="37+7+8")
    label(db, item_id, "alice", "37+7+8")
    assert label(db, item_id, "bob", "37 + 7 + 8")["status"] == "done"
    report = agreement(db)
    assert (report["items_with_two_labels"], report["agreed"]) == (1, 1)
    assert report["exact_agreement"] == 1.0


def test_minus_zero_is_zero(db: Database) -> None:
    """Stored as '-0.0' beside '0.0', a label of -0.0 rejected a correction to 0."""
    with db.session() as s:
        s.add(Candidate(id=1, name="num", version="1", created_at=T0, updated_at=T0,
                        pipeline={"output": {"type": "number"}}))
        s.add(Prediction(prediction_id="p", event_id="e", candidate="num", input_hash="h",
                         output="1.0", output_type="number", created_at=T0, slice="all"))
        keep_input(s, "p", "h", kind="image")
        s.add(Correction(correction_id="c", event_id="ce", prediction_id="p",
                         corrected_output="0.0", created_at=T0))
        s.add(RelabelItem(queue="verification", prediction_id="p", input_hash="h",
                          candidate="num", slice="all", reasons=["correction"], priority=1.0,
                          status="open", labels_needed=2, created_at=T0))
    first = annotation.claim(db, "alice")
    assert first is not None
    assert annotation.submit(db, first["id"], "alice", -0.0)["verdict"] == "accept"
    second = annotation.claim(db, "bob")
    assert second is not None
    assert annotation.submit(db, second["id"], "bob", 0)["status"] == "done"


def test_a_json_label_holding_nan_is_refused(db: Database, tmp_path: Path) -> None:
    """A Label Studio file's NaN was stored, exported as JSON no strict reader takes and shown
    as null by the item view."""
    item_id = other_item(db, "scorer", {"output": {"type": "json"}})
    said = {"from_name": "label", "to_name": "input", "type": "textarea",
            "value": {"text": ['{"score": NaN}']}}
    with pytest.raises(AbvocError, match=r"annotation 1: .*not finite \(NaN or Infinity\)"):
        import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": item_id},
                                                   "annotations": [{"completed_by": "zed",
                                                                    "result": [said]}]}]))
    assert annotation.show(db, item_id)["status"] == "open"


@pytest.mark.parametrize("text", ["hello world", '{"score": 1', "[" * 3000])
def test_a_json_label_that_is_not_json_is_refused_as_such(db: Database, tmp_path: Path,
                                                           text: str) -> None:
    """Text that does not parse was taken as a JSON string and refused for breaking the
    output's schema ("not of type array"), which told the annotator nothing of the slip."""
    item_id = other_item(db, "scorer", {"output": {"type": "json"}})
    said = {"from_name": "label", "to_name": "input", "type": "textarea",
            "value": {"text": [text]}}
    with pytest.raises(AbvocError, match=r"annotation 1: the label .* is not JSON"):
        import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": item_id},
                                                   "annotations": [{"completed_by": "zed",
                                                                    "result": [said]}]}]))
    assert annotation.show(db, item_id)["status"] == "open"


@pytest.mark.parametrize(("typed", "words"), [
    ('{"k": 1e300}', r"past 2\^53"), ('{"big": 123456789012345678901234567890}', r"past 2\^53"),
    ("[" * 40 + "]" * 40, "nests more than 30 levels"),
    ("[" * 900 + "]" * 900, "nests more than 30 levels"),
    ("[" * 3000, "nests thousands of levels")])
def test_a_json_label_typed_on_the_page_keeps_the_apis_bounds(db: Database, typed: str,
                                                              words: str) -> None:
    """The Annotate page parsed its text with plain json.loads: past 2^53 and 100 levels deep
    were stored (the export then wrote ground truth its offline test refuses), and thousands
    of levels deep a RecursionError made the callback a 500."""
    item_id = other_item(db, "scorer", {"output": {"type": "json"}})
    assert annotation.claim(db, "zed")["id"] == item_id
    with pytest.raises(AbvocError, match=words):
        annotation.submit(db, item_id, "zed", annotate.label_value("json", typed))
    assert annotation.show(db, item_id)["status"] == "leased"  # nothing stored
    assert annotation.submit(db, item_id, "zed", annotate.label_value(
        "json", '{"k": 9007199254740992, "deep": ' + "[" * 28 + "]" * 28 + "}"))[
        "status"] == "done"
