"""Dataset snapshots (versioned, content-hashed, one line per input) and the Label Studio round
trip: export tasks, label them there, import the annotations; import paths stay inside the
import folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import Prediction, RelabelItem, ServedPrediction
from feedback import annotation
from feedback.export import export_snapshot
from feedback.label_studio import export_tasks as ls_export
from feedback.label_studio import import_tasks
from tests.feedback.test_relabel_annotation import add_items


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 10), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def with_inputs(db: Database, n: int, queue: str = "training") -> list[int]:
    return add_items(db, n, queue=queue, image=png)


def label_all(db: Database, labels: list[str], who: str = "ann") -> None:
    i = 0
    while (item := annotation.claim(db, who)) is not None:
        annotation.submit(db, item["id"], who, labels[i % len(labels)])
        i += 1


def test_snapshot_versions_and_content_hash(db: Database, tmp_path: Path) -> None:
    with_inputs(db, 3)
    label_all(db, ["dog", "owl", "cat"])
    first = export_snapshot(db, tmp_path, "pets")
    assert first["version"] == 1 and first["examples"] == 3 and not first["unchanged"]
    folder = Path(first["path"])
    lines = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [x["label"] for x in lines] == ["dog", "owl", "cat"]
    assert lines[0]["source"] == {"queue": "training", "reasons": ["correction"]}
    assert lines[0]["provenance"]["annotators"] == "ann"
    image = folder / lines[0]["inputs"]["image"]["file"]
    assert image.read_bytes() == png(0)
    assert "slice" not in lines[0]  # 'all' is no slice of its own
    again = export_snapshot(db, tmp_path, "pets")
    assert again["unchanged"] and again["version"] == 1
    assert not list((tmp_path / "pets").glob(".v*"))  # no half-written version left
    with_inputs(db, 1, queue="offline-test")
    label_all(db, ["owl"])
    second = export_snapshot(db, tmp_path, "pets")
    assert second["version"] == 2 and second["examples"] == 4
    assert second["content_hash"] != first["content_hash"]
    only = export_snapshot(db, tmp_path, "audit", ["offline-test"])
    assert only["examples"] == 1


def test_an_export_with_nothing_to_write_makes_no_version(db: Database, tmp_path: Path) -> None:
    """An empty queue made a version of 0 examples (rc 0), and the first real export became v2;
    now it says why, and leaves no dataset folder behind."""
    with pytest.raises(AbvocError, match=r"^nothing to export: no finished item of training "
                                         r"yet; no dataset version was made$"):
        export_snapshot(db, tmp_path, "empty", ["training"])
    assert not (tmp_path / "empty").exists()
    with_inputs(db, 2)  # open items, not labeled yet
    with pytest.raises(AbvocError, match=r"^nothing to export"):
        export_snapshot(db, tmp_path, "empty")
    label_all(db, ["dog", "owl"])
    assert export_snapshot(db, tmp_path, "empty")["version"] == 1


def test_label_studio_round_trip(db: Database, tmp_path: Path) -> None:
    ids = with_inputs(db, 2)
    out = ls_export(db, tmp_path / "ls")
    assert out["tasks"] == 2
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    first = tasks[0]
    assert first["data"]["abvoc_item_id"] == ids[0] and first["data"]["classes"] == [
        "cat", "dog", "owl"]
    assert (tmp_path / "ls" / first["data"]["image"]).read_bytes() == png(0)
    assert first["predictions"][0]["result"][0]["value"] == {"choices": ["cat"]}
    assert first["annotations"] == []
    # Labeled in Label Studio: one annotation each, one cancelled.
    for task, label in zip(tasks, ["owl", "dog"], strict=True):
        task["annotations"] = [{"completed_by": 7, "result": [{
            "from_name": "label", "to_name": "input", "type": "choices",
            "value": {"choices": [label]}}]},
            {"completed_by": 8, "was_cancelled": True, "result": []}]
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(tasks))
    result = import_tasks(db, tmp_path / "ls")
    assert (result["tasks"], result["labels"], result["new_items"]) == (2, 2, 0)
    assert result["skipped"]["cancelled"] == 2 and result["labeled_items"]["done"] == 2
    assert [annotation.show(db, i)["label"] for i in ids] == ["owl", "dog"]
    assert import_tasks(db, tmp_path / "ls")["labels"] == 0  # imported once
    # And back out: the annotations travel with the tasks.
    ls_export(db, tmp_path / "ls2")
    back = json.loads((tmp_path / "ls2" / "tasks.json").read_text())
    assert back[0]["annotations"][0]["completed_by"] == "labelstudio:7"
    assert back[0]["annotations"][0]["result"][0]["value"] == {"choices": ["owl"]}


def test_import_refuses_bad_labels_whole(db: Database, tmp_path: Path) -> None:
    ids = with_inputs(db, 2)
    folder = tmp_path / "imp"
    folder.mkdir()
    tasks = [{"data": {"abvoc_item_id": ids[0]}, "annotations": [
        {"completed_by": 1, "result": [{"value": {"choices": ["dog"]}}]}]},
             {"data": {"abvoc_item_id": ids[1]}, "annotations": [
                 {"completed_by": 1, "result": [{"value": {"choices": ["horse"]}}]}]}]
    (folder / "tasks.json").write_text(json.dumps(tasks))
    with pytest.raises(AbvocError, match="horse"):
        import_tasks(db, folder)
    assert annotation.show(db, ids[0])["label"] is None  # nothing partial stored


@pytest.mark.parametrize("path", ["../secret.png", "/etc/passwd", "http://x/a.png",
                                  "sub/../../secret.png", "link.png"])
def test_import_paths_stay_in_the_folder(db: Database, tmp_path: Path, path: str) -> None:
    add_items(db, 1)
    folder = tmp_path / "imp"
    folder.mkdir()
    (tmp_path / "secret.png").write_bytes(png(1))
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "tasks.json").write_text(json.dumps([{"data": {"image": path}}]))
    with pytest.raises(AbvocError, match="import folder|relative"):
        import_tasks(db, folder, candidate="pets")


def test_import_of_new_data(db: Database, tmp_path: Path) -> None:
    add_items(db, 1)
    folder = tmp_path / "imp"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(png(5))
    (folder / "tasks.json").write_text(json.dumps([{"data": {"image": "img/a.png"},
                                                    "annotations": [{"completed_by": 3,
                                                                     "result": [{"value": {
                                                                         "choices": ["owl"]}}]}]}]))
    assert import_tasks(db, folder, candidate="pets")["new_items"] == 1
    with db.session() as s:
        item = s.query(RelabelItem).filter(RelabelItem.prediction_id.like("import:%")).one()
        assert item.status == "done" and item.label == "owl" and item.queue == "training"
    snapshot = export_snapshot(db, tmp_path / "out", "imported")
    assert snapshot["examples"] == 1


def _answers(db: Database, tmp_path: Path) -> tuple[int, int, dict[int, dict[str, Any]]]:
    """Two items, the first one's served prediction failed (stored output ''), the second
    answered by pets v4 with a shadow of v5 and a failed shadow; their exported tasks."""
    failed, answered = with_inputs(db, 2)
    with db.session() as s:
        broken = s.get(Prediction, "training-p0")
        assert broken is not None
        broken.failed, broken.output = True, ""
        s.add_all([ServedPrediction(prediction_id="training-p1", candidate="pets", version="4",
                                    created_at=utcnow()),
                   ServedPrediction(prediction_id="shadow-ok", candidate="pets", version="5",
                                    created_at=utcnow())])
        for pid, output, broke in (("shadow-ok", "owl", False), ("shadow-broke", "", True)):
            s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate="pets",
                             input_hash="h-training-p1", output=output, output_type="label",
                             shadow=True, failed=broke, created_at=utcnow(), slice="all",
                             experiment_id=1))
    ls_export(db, tmp_path / "ls")
    tasks = {t["data"]["abvoc_item_id"]: t
             for t in json.loads((tmp_path / "ls" / "tasks.json").read_text())}
    return failed, answered, tasks


def test_label_studio_offers_no_failed_answer(db: Database, tmp_path: Path) -> None:
    """A failed prediction is no pre-annotation: accepting its empty one in Label Studio made
    a label the import refused, and with it the whole file."""
    failed, answered, tasks = _answers(db, tmp_path)
    assert tasks[failed]["predictions"] == []
    assert [p["result"][0]["value"]["choices"] for p in tasks[answered]["predictions"]] == [
        ["cat"], ["owl"]]
    # Label Studio's "accept the prediction": the first pre-annotation becomes an annotation.
    for task in tasks.values():
        task["annotations"] = [{"completed_by": 7, "result": p["result"]}
                               for p in task["predictions"][:1]]
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(list(tasks.values())))
    assert import_tasks(db, tmp_path / "ls")["labels"] == 1
    assert annotation.show(db, answered)["label"] == "cat"


def test_label_studio_names_the_version_that_answered(db: Database, tmp_path: Path) -> None:
    _, answered, tasks = _answers(db, tmp_path)
    assert [p["model_version"] for p in tasks[answered]["predictions"]] == [
        "pets v4", "pets v5 (shadow)"]
