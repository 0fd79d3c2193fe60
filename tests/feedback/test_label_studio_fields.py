"""What an imported annotation says is read as written, or refused naming the task and the
annotation: a number label in plain ASCII decimal only (float() took '1_000', ' 3 ' and a
full-width '０'); ``was_cancelled`` a JSON boolean only ("no" was read as cancelled); an
annotation naming no annotator is named by its own id (all were one 'labelstudio:unknown')."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import RelabelLabel
from feedback.label_studio import import_tasks
from tests.feedback.test_label_studio_import import (
    annotated,
    item,
    label_rows,
    other_item,
    write,
    written,
)
from tests.feedback.test_relabel_annotation import add_items

NUMBER = {"output": {"type": "number"}}


@pytest.mark.parametrize("text", ["1_000", " 3 ", "3 ", "\uff10", "\u0661", "+3", "nan", "inf",
                                  "1e", "null", ""])
def test_a_number_label_not_in_plain_ascii_digits_is_refused(db: Database, tmp_path: Path,
                                                             text: str) -> None:
    item_id = other_item(db, "price", NUMBER)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": item_id}, "annotations": [written("2"), written(text)]}]))
    assert exc.value.status == 400
    assert exc.value.message == (
        f"task 1 (abvoc item {item_id}), annotation 2: {text!r} is not a number: write a number "
        "label in plain ASCII digits, like 1000 or 2.5e3 (no spaces, '_', '+' or other "
        "scripts' digits)")
    assert label_rows(db) == 0


@pytest.mark.parametrize("text, value", [("1000", 1000.0), ("2.5e3", 2500.0), ("-0.5", -0.5),
                                         (".5", 0.5), ("007", 7.0), ("1E-2", 0.01)])
def test_a_plain_number_label_is_taken(db: Database, tmp_path: Path, text: str,
                                       value: float) -> None:
    item_id = other_item(db, "price", NUMBER)
    out = import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": item_id}, "annotations": [written(text)]}]))
    assert out["labels"] == 1
    assert float(item(db, item_id).label or "") == value


@pytest.mark.parametrize("flag", ["no", "false", "true", 0, 1, [], {}],
                         ids=["no", "false-text", "true-text", "zero", "one", "list", "object"])
def test_was_cancelled_must_be_a_json_boolean(db: Database, tmp_path: Path, flag: object) -> None:
    (pets,) = add_items(db, 1)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets},
                                                   "annotations": [annotated("dog", 1), {
                                                       **annotated("owl", 2),
                                                       "was_cancelled": flag}]}]))
    assert exc.value.status == 400
    assert exc.value.message == (
        f"task 1 (abvoc item {pets}), annotation 2: 'was_cancelled' must be true or false (a "
        f"JSON boolean, as Label Studio writes it), got {flag!r}")
    assert label_rows(db) == 0


def test_was_cancelled_true_skips_and_false_or_null_labels(db: Database, tmp_path: Path) -> None:
    (pets,) = add_items(db, 1, labels_needed=3)
    given = [{**annotated("dog", 1), "was_cancelled": False},
             {**annotated("dog", 2), "was_cancelled": None},
             {**annotated("dog", 3), "was_cancelled": True}, annotated("dog", 4)]
    out = import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets},
                                                     "annotations": given}]))
    assert out["labels"] == 3 and out["skipped"]["cancelled"] == 1
    assert item(db, pets).status == "done"


def _anonymous(value: str, annotation_id: object, who: object = None) -> dict[str, object]:
    """An annotation whose annotator Label Studio does not name (``completed_by`` null, empty
    or an object without an e-mail or id), with the annotation's own ``id``."""
    return {**annotated(value, who), "id": annotation_id}


def test_two_anonymous_annotations_are_two_annotators(db: Database, tmp_path: Path) -> None:
    """Both were 'labelstudio:unknown': the second's label was skipped as already labeled by
    that annotator. Each is named by its annotation's id, so a second import skips both."""
    (pets,) = add_items(db, 1, labels_needed=2)
    given = [_anonymous("dog", 101), _anonymous("dog", 102, ""),
             _anonymous("dog", 103, {"email": ""})]
    folder = write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets}, "annotations": given}])
    out = import_tasks(db, folder)
    assert out["labels"] == 3 and out["skipped"]["already_labeled"] == 0
    with db.reading() as s:
        names = sorted(s.scalars(select(RelabelLabel.annotator)))
    assert names == [f"labelstudio:annotation-{n}" for n in (101, 102, 103)]
    assert item(db, pets).status == "done" and item(db, pets).label == "dog"
    assert import_tasks(db, folder)["skipped"]["already_labeled"] == 3


def test_an_annotation_naming_no_annotator_and_no_id_is_refused(db: Database,
                                                                tmp_path: Path) -> None:
    (pets,) = add_items(db, 1)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets},
                                                   "annotations": [annotated("dog", None)]}]))
    assert exc.value.message.startswith(
        f"task 1 (abvoc item {pets}), annotation 1: no annotator is named: give 'completed_by'")
    assert label_rows(db) == 0


def test_a_label_an_older_import_stored_as_unknown_is_not_applied_again(db: Database,
                                                                      tmp_path: Path) -> None:
    """Before annotations were named by their id, an anonymous one was stored as
    'labelstudio:unknown': importing that file again must not count it a second time."""
    (pets,) = add_items(db, 1, labels_needed=2)
    with db.session() as s:
        s.add(RelabelLabel(item_id=pets, annotator="labelstudio:unknown", action="label",
                           label="dog", created_at=utcnow()))
    out = import_tasks(db, write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets},
                                                     "annotations": [_anonymous("dog", 101)]}]))
    assert out["labels"] == 0 and out["skipped"]["already_labeled"] == 1
