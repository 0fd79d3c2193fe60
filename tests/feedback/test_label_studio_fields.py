"""What an imported annotation says is read as written, or refused naming the task and the
annotation: a number label in plain ASCII decimal only (float() took '1_000', ' 3 ' and a
full-width '０')."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import AbvocError
from core.store.db import Database
from feedback.label_studio import import_tasks
from tests.feedback.test_label_studio_import import item, label_rows, other_item, write, written

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
