"""A Label Studio file is not read by the API's body checks: text the store cannot hold (a NUL,
which PostgreSQL refuses, or a lone UTF-16 surrogate, which no UTF-8 store takes) in a label or
an image's path is a 400 naming its task, nothing stored, not a traceback from the insert."""

from __future__ import annotations

import json
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
    written,
)
from tests.feedback.test_relabel_annotation import add_items


def _tasks(folder: Path, tasks: list[dict[str, object]]) -> Path:
    """The file as Label Studio writes it: JSON escapes (json.dumps keeps \\ud800 as one)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps(tasks))
    return folder


@pytest.mark.parametrize("text, words", [
    ("x\x00y", "must not contain NUL"), ("x\ud800y", "must be valid Unicode text")])
def test_a_text_label_the_store_cannot_hold_is_refused(db: Database, tmp_path: Path,
                                                       text: str, words: str) -> None:
    ocr = other_item(db, "ocr-text", {"output": {"type": "text"}})
    folder = _tasks(tmp_path / "imp", [
        {"data": {"abvoc_item_id": ocr}, "annotations": [written("fine", 1), written(text, 2)]}])
    with pytest.raises(AbvocError, match=rf"task 1 \(abvoc item {ocr}\), annotation 2: "
                                         rf"'label' {words}") as exc:
        import_tasks(db, folder)
    assert exc.value.status == 400
    assert label_rows(db) == 0 and item(db, ocr).status == "open"


def test_an_image_path_the_file_system_cannot_name_is_refused(db: Database,
                                                              tmp_path: Path) -> None:
    add_items(db, 1)
    folder = _tasks(tmp_path / "imp", [{"data": {"image": "a\ud800.png"},
                                        "annotations": [annotated("owl")]}])
    with pytest.raises(AbvocError, match="task 1: data.image: a file path must be valid "
                                         "Unicode text") as exc:
        import_tasks(db, folder, candidate="pets")
    assert exc.value.status == 400
    assert label_rows(db) == 0
