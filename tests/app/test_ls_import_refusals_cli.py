"""`abvoc relabel ls-import` refuses what an import must not do as one line (exit status 2) and
stores nothing: new data into the audit queue, images for a tensor candidate, a task of another
project, a label it cannot take, two answers for one label, a class as a text item's label or a
number label not in plain ASCII digits, or a `was_cancelled` that is no JSON boolean (naming the
task and annotation)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from app.cli import main
from core.settings import Settings
from core.store import Database
from core.store.models import RelabelItem, RelabelLabel
from tests.feedback.test_label_studio_import import annotated, other_item, written
from tests.feedback.test_relabel_annotation import add_items
from tests.feedback.test_relabel_export import png


def _stored(settings: Settings) -> tuple[int, int]:
    with Database(settings.database_url) as db, db.reading() as s:
        return (int(s.scalar(select(func.count()).select_from(RelabelItem)) or 0),
                int(s.scalar(select(func.count()).select_from(RelabelLabel)) or 0))


def test_ls_import_refusals(cli: CliRunner, settings: Settings, tmp_path: Path) -> None:
    with Database(settings.database_url) as db:
        (pets,) = add_items(db, 1)
        text = other_item(db, "ocr-text", {"output": {"type": "text"}})
        other_item(db, "iris-onnx", {"takes": "tensors", "output": {
            "type": "label", "classes": ["setosa", "virginica"]}}, cid=11)
        price = other_item(db, "price", {"output": {"type": "number"}}, cid=12)
    folder = tmp_path / "imp"
    folder.mkdir()
    (folder / "a.png").write_bytes(png(3))
    files = {
        "new.json": [{"data": {"image": "a.png"}, "annotations": [annotated("setosa")]}],
        "pets.json": [{"data": {"image": "a.png"}, "annotations": [annotated("owl")]}],
        "other.json": [{"data": {"abvoc_item_id": text, "candidate": "other-project-ocr",
                                 "output_type": "label", "classes": ["cat", "dog"]},
                        "annotations": [annotated("dog")]}],
        "rose.json": [{"data": {"abvoc_item_id": pets},
                       "annotations": [annotated("dog"), annotated("rose", 7)]}],
        "two.json": [{"data": {"abvoc_item_id": pets}, "annotations": [
            {"completed_by": 7, "result": [{"value": {"choices": ["dog", "owl"]}}]}]}],
        "class.json": [{"data": {"abvoc_item_id": text}, "annotations": [annotated("dog")]}],
        "number.json": [{"data": {"abvoc_item_id": price}, "annotations": [written("1_000")]}],
        "cancel.json": [{"data": {"abvoc_item_id": pets},
                         "annotations": [{**annotated("dog"), "was_cancelled": "no"}]}],
    }
    for name, tasks in files.items():
        (folder / name).write_text(json.dumps(tasks))
    before = _stored(settings)
    for args, words in (
            (["pets.json", "--candidate", "pets", "--queue", "offline-test"],
             "'offline-test' holds the uniform audit sample"),
            (["new.json", "--candidate", "iris-onnx"],
             "task 1 is new data (no abvoc_item_id), which an import takes as an image only, "
             "but candidate 'iris-onnx' takes tensors"),
            (["other.json"], f"task 1 (abvoc item {text}) does not belong here: its candidate "
                             "'other-project-ocr'"),
            (["rose.json"], f"task 1 (abvoc item {pets}), annotation 2: 'label' 'rose'"),
            (["two.json"], f"task 1 (abvoc item {pets}), annotation 1: the result gives 2 "
                           "answers (['dog', 'owl']) for one label"),
            (["class.json"], f"task 1 (abvoc item {text}), annotation 1: a 'choices' result "
                             "picks a class of a label candidate, but this item's labels are "
                             "text"),
            (["number.json"], f"task 1 (abvoc item {price}), annotation 1: '1_000' is not a "
                              "number: write a number label in plain ASCII digits, like 1000 "
                              "or 2.5e3"),
            (["cancel.json"], f"task 1 (abvoc item {pets}), annotation 1: 'was_cancelled' must "
                              "be true or false (a JSON boolean, as Label Studio writes it), "
                              "got 'no'")):
        result = cli.invoke(main, ["relabel", "ls-import", str(folder), "--tasks", *args])
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output
        assert _stored(settings) == before
