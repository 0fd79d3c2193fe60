"""Label Studio import: an annotation's result must be one answer of the item's kind (one class
ticked for a label candidate's item, written text for any other), and a task's classes each
named once; else the import is refused naming the task and annotation, nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import AbvocError
from core.store.db import Database
from feedback.label_studio import import_tasks
from tests.feedback.test_label_studio_import import (
    annotated,
    item,
    label_rows,
    other_item,
    write,
    written,
)
from tests.feedback.test_relabel_annotation import CLASSES, add_items


def test_a_result_with_two_answers_is_refused(db: Database, tmp_path: Path) -> None:
    """Two classes ticked for one label: the first was taken, whichever the annotator meant."""
    (pets,) = add_items(db, 1)
    text = other_item(db, "ocr-text", {"output": {"type": "text"}})
    two = annotated("dog", 7)
    two["result"][0]["value"]["choices"] = ["dog", "owl"]
    two_texts = written("a", 7)
    two_texts["result"][0]["value"]["text"] = ["a", "b"]
    for item_id, annotation_ in ((pets, two), (text, two_texts)):
        with pytest.raises(AbvocError) as exc:
            import_tasks(db, write(tmp_path / f"imp{item_id}", [
                {"data": {"abvoc_item_id": item_id},
                 "annotations": [annotated("dog") if item_id == pets else written("a"),
                                 annotation_]}]))
        assert exc.value.status == 400
        assert exc.value.message.startswith(
            f"task 1 (abvoc item {item_id}), annotation 2: the result gives 2 answers")
    assert label_rows(db) == 0 and item(db, pets).status == "open"


@pytest.mark.parametrize("output_type", ["latex", "text", "number", "json"])
def test_choices_label_only_a_label_candidates_items(db: Database, tmp_path: Path,
                                                     output_type: str) -> None:
    """A class picked from a list is no formula, text, number or JSON: it was taken as one."""
    item_id = other_item(db, "other", {"output": {"type": output_type}}
                         if output_type != "latex" else {})
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": item_id}, "annotations": [annotated("7")]}]))
    assert exc.value.message.startswith(
        f"task 1 (abvoc item {item_id}), annotation 1: a 'choices' result picks a class of a "
        f"label candidate, but this item's labels are {output_type}")
    assert label_rows(db) == 0
    out = import_tasks(db, write(tmp_path / "text", [
        {"data": {"abvoc_item_id": item_id}, "annotations": [written("7")]}]))
    assert out["labels"] == 1  # the same answer written as text is its label


def test_classes_are_each_named_once_in_any_order(db: Database, tmp_path: Path) -> None:
    """A class named twice was taken as the item's classes (compared as sets); a task lists
    them in another order when Label Studio's config sorts its choices, which changes no
    label (labels are class names), so that is taken."""
    (pets,) = add_items(db, 1)
    classes = list(CLASSES)
    twice = write(tmp_path / "twice", [{"data": {
        "abvoc_item_id": pets, "classes": [*classes, classes[0]]},
        "annotations": [annotated("dog")]}])
    with pytest.raises(AbvocError, match=rf"task 1 \(abvoc item {pets}\) does not belong here: "
                                         r'its classes \["cat", "dog", "owl", "cat"\] \(the '
                                         rf"item {pets} has 'cat', 'dog', 'owl', each once\)"):
        import_tasks(db, twice)
    assert label_rows(db) == 0
    out = import_tasks(db, write(tmp_path / "reordered", [{"data": {
        "abvoc_item_id": pets, "classes": classes[::-1]}, "annotations": [annotated("dog")]}]))
    assert out["labels"] == 1
