"""A Label Studio import applies a task only to the item it belongs to, as labels that join the
item's like an annotator's (never taking a leased, flagged or done item from its workflow), puts
new data only where it fits (images for image candidates, never the audit queue, a second label
by the rules), and names the task and annotation of any label it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from core.errors import AbvocError
from core.store.db import Database, utcnow
from core.store.models import Candidate, PredictionInput, RelabelItem, RelabelLabel
from feedback import annotation, queue_listing, relabel_rules
from feedback.label_studio import export_tasks, import_tasks, summary
from tests.feedback.test_relabel_annotation import add_items
from tests.feedback.test_relabel_export import png
from tests.support.kept_inputs import keep_input

T0 = utcnow()


def other_item(db: Database, name: str, pipeline: dict[str, Any], *, cid: int = 10,
               queue: str = "training") -> int:
    """An open item of candidate `name` (registered with `pipeline`)."""
    with db.session() as s:
        if s.get(Candidate, cid) is None:
            s.add(Candidate(id=cid, name=name, version="1", created_at=T0, updated_at=T0,
                            pipeline=pipeline))
        keep_input(s, f"{name}-p", f"h-{name}",
                   kind="tensors" if pipeline.get("takes") == "tensors" else "image")
        item = RelabelItem(queue=queue, prediction_id=f"{name}-p", input_hash=f"h-{name}",
                           candidate=name, reasons=["correction"], priority=1.0, status="open",
                           labels_needed=1, created_at=T0)
        s.add(item)
        s.flush()
        return item.id


def annotated(value: str, who: Any = 42) -> dict[str, Any]:
    return {"completed_by": who, "result": [{"from_name": "label", "to_name": "input",
                                             "type": "choices", "value": {"choices": [value]}}]}


def written(value: str, who: Any = 42) -> dict[str, Any]:
    """An annotation in a textarea: the label of any item but a label candidate's."""
    return {"completed_by": who, "result": [{"from_name": "label", "to_name": "input",
                                             "type": "textarea", "value": {"text": [value]}}]}


def write(folder: Path, tasks: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text(json.dumps(tasks))
    return folder


def label_rows(db: Database) -> int:
    with db.reading() as s:
        return int(s.scalar(select(func.count()).select_from(RelabelLabel)) or 0)


def item(db: Database, item_id: int) -> RelabelItem:
    with db.reading() as s:
        row = s.get(RelabelItem, item_id)
        assert row is not None
        s.expunge(row)
        return row


# 1. A task belongs to its item.

@pytest.mark.parametrize("data, words", [
    ({"candidate": "other-project-ocr", "output_type": "label", "classes": ["cat", "dog"]},
     "candidate 'other-project-ocr' (the item"),
    ({"queue": "verification"}, "queue 'verification' (the item"),
    ({"output_type": "label"}, "output_type 'label' (the item"),
])
def test_a_task_of_another_project_is_refused_whole(db: Database, tmp_path: Path,
                                                    data: dict[str, Any], words: str) -> None:
    (pets,) = add_items(db, 1)
    text = other_item(db, "ocr-text", {"output": {"type": "text"}})
    folder = write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": pets}, "annotations": [annotated("dog")]},
        {"data": {"abvoc_item_id": text, "queue": "training", **data},
         "annotations": [annotated("dog")]}])
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, folder)
    assert exc.value.status == 400
    assert f"task 2 (abvoc item {text}) does not belong here" in exc.value.message
    assert words in exc.value.message
    assert label_rows(db) == 0 and item(db, text).status == "open"  # nothing stored


def test_classes_that_differ_from_the_items_are_refused(db: Database, tmp_path: Path) -> None:
    (pets,) = add_items(db, 1)
    folder = write(tmp_path / "imp", [{"data": {
        "abvoc_item_id": pets, "candidate": "pets", "output_type": "label",
        "classes": ["cat", "dog"]}, "annotations": [annotated("dog")]}])
    with pytest.raises(AbvocError, match=r'task 1 \(abvoc item \d+\).*classes \["cat", "dog"\]'):
        import_tasks(db, folder)
    assert label_rows(db) == 0


# 2. Imported labels join the item's; the item's workflow keeps its state.

def test_a_leased_item_keeps_its_lease(db: Database, tmp_path: Path) -> None:
    (pets,) = add_items(db, 1)
    claimed = annotation.claim(db, "alice")
    assert claimed is not None and claimed["id"] == pets
    out = import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": pets}, "annotations": [annotated("dog")]}]))
    held = item(db, pets)
    assert held.status == "leased" and held.lease_owner == "alice"
    assert annotation.submit(db, pets, "alice", "dog")["status"] == "done"
    assert item(db, pets).label == "dog"
    assert out["labels"] == 1 and out["labeled_items"]["leased"] == 1


def test_a_leased_items_annotator_who_disagrees_sends_it_to_review(db: Database,
                                                                   tmp_path: Path) -> None:
    (pets,) = add_items(db, 1)
    annotation.claim(db, "alice")
    import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": pets}, "annotations": [annotated("dog")]}]))
    assert annotation.submit(db, pets, "alice", "owl")["status"] == "review"


def test_a_flagged_item_stays_for_the_admin(db: Database, tmp_path: Path) -> None:
    (pets,) = add_items(db, 1)
    annotation.claim(db, "carol")
    annotation.flag(db, pets, "carol", "unreadable")
    out = import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": pets}, "annotations": [annotated("dog")]}]))
    assert item(db, pets).status == "flagged" and item(db, pets).note == "unreadable"
    assert annotation.resolve(db, pets, "admin", "owl")["status"] == "done"
    assert out["labeled_items"]["flagged"] == 1


def _done_item(db: Database, label: str) -> int:
    (pets,) = add_items(db, 1, labels_needed=2)
    for who in ("alice", "bob"):
        assert annotation.claim(db, who) is not None
        annotation.submit(db, pets, who, label)
    assert item(db, pets).status == "done"
    return pets


def test_a_done_item_contradicted_by_the_import_goes_to_review(db: Database,
                                                                tmp_path: Path) -> None:
    pets = _done_item(db, "owl")
    folder = write(tmp_path / "imp", [{"data": {"abvoc_item_id": pets},
                                       "annotations": [annotated("dog", 50)]},
                                      {"data": {"abvoc_item_id": pets},
                                       "annotations": [annotated("dog", 51)]}])
    out = import_tasks(db, folder)
    disputed = item(db, pets)
    assert disputed.status == "review" and disputed.label is None  # no longer ground truth
    assert [i["id"] for i in queue_listing.listing(db, "review")] == [pets]
    assert out["labels"] == 2 and out["disputed"] == 1 and out["labeled_items"]["review"] == 1
    assert "went to review" in summary(out)
    assert annotation.resolve(db, pets, "admin", "dog")["status"] == "done"


def test_a_done_item_the_import_agrees_with_stays_done(db: Database, tmp_path: Path) -> None:
    pets = _done_item(db, "owl")
    out = import_tasks(db, write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": pets}, "annotations": [annotated("owl", 50)]}]))
    assert out["labels"] == 1 and out["disputed"] == 0 and out["labeled_items"]["done"] == 1
    assert item(db, pets).status == "done" and item(db, pets).label == "owl"


def test_the_counts_say_what_was_applied_and_what_skipped(db: Database,
                                                          tmp_path: Path) -> None:
    first, dropped = add_items(db, 2)
    with db.session() as s:
        row = s.get(RelabelItem, dropped)
        assert row is not None
        row.status = "dropped"
    folder = write(tmp_path / "imp", [
        {"data": {"abvoc_item_id": first}, "annotations": [
            annotated("dog", 1), {"completed_by": 2, "was_cancelled": True, "result": []}]},
        {"data": {"abvoc_item_id": dropped}, "annotations": [annotated("dog", 1)]}])
    out = import_tasks(db, folder)
    assert out["labels"] == 1
    assert out["skipped"] == {"already_labeled": 0, "dropped": 1, "cancelled": 1,
                              "without_input": 0}
    again = import_tasks(db, folder)
    assert again["labels"] == 0 and again["skipped"]["already_labeled"] == 1
    assert summary(again) == ("2 tasks: 0 labels applied, 3 skipped (1 already labeled by that "
                              "annotator, 1 on dropped items, 1 cancelled), 0 new items")
    assert summary(out).endswith("0 new items; labeled items now 1 done")


# 3. New data goes only where it fits.

def _new_data(tmp_path: Path, labels: list[str]) -> Path:
    folder = tmp_path / "imp"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.png").write_bytes(png(5))
    return write(folder, [{"data": {"image": "a.png"},
                           "annotations": [annotated(x, i) for i, x in enumerate(labels)]}])


def _item_count(db: Database) -> int:
    with db.reading() as s:
        return int(s.scalar(select(func.count()).select_from(RelabelItem)) or 0)


def test_images_are_refused_for_a_candidate_that_takes_tensors(db: Database,
                                                               tmp_path: Path) -> None:
    other_item(db, "iris-onnx", {"takes": "tensors", "output": {
        "type": "label", "classes": ["setosa", "versicolor", "virginica"]}})
    with pytest.raises(AbvocError, match="takes as an image only, but candidate 'iris-onnx' "
                                         "takes tensors"):
        import_tasks(db, _new_data(tmp_path, ["setosa"]), candidate="iris-onnx")
    assert _item_count(db) == 1


@pytest.mark.parametrize("fake", [b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
                                  b"\xff\xd8" + b"junk" * 20])
def test_new_data_that_only_starts_like_an_image_is_refused(db: Database, tmp_path: Path,
                                                             fake: bytes) -> None:
    """The magic bytes passed: the item was stored, and every later export of its queue broke
    on it (PIL.UnidentifiedImageError)."""
    add_items(db, 1)
    folder = _new_data(tmp_path, ["owl"])
    (folder / "a.png").write_bytes(fake)
    with pytest.raises(AbvocError, match="task 1: data.image must be a PNG or JPEG that decodes"):
        import_tasks(db, folder, candidate="pets")
    assert _item_count(db) == 1


def test_new_data_never_goes_to_the_audit_queue(db: Database, tmp_path: Path) -> None:
    add_items(db, 1)
    with pytest.raises(AbvocError, match="'offline-test' holds the uniform audit sample") as exc:
        import_tasks(db, _new_data(tmp_path, ["owl"]), queue="offline-test", candidate="pets")
    assert exc.value.status == 400
    assert _item_count(db) == 1


def test_new_items_need_a_second_label_by_the_rules(db: Database, tmp_path: Path) -> None:
    add_items(db, 1)
    relabel_rules.put(db, {"second_annotator_share": 1.0})
    out = import_tasks(db, _new_data(tmp_path, ["owl"]), candidate="pets")
    with db.reading() as s:
        new = s.scalars(select(RelabelItem).where(
            RelabelItem.prediction_id.like("import:%"))).one()
        assert new.labels_needed == 2 and new.status == "open" and new.label is None
    assert out["new_items"] == 1 and out["labeled_items"]["open"] == 1
    again = import_tasks(db, _new_data(tmp_path, ["owl"]), candidate="pets")
    assert again["new_items"] == 0  # the same image is the same item


def test_an_image_queued_for_another_output_type_is_refused(db: Database,
                                                             tmp_path: Path) -> None:
    """The image was the training item of a label candidate: a text candidate's import of it
    stored 'hello' as a label of that item and sent the done item to review."""
    add_items(db, 1)
    other_item(db, "ocr-text", {"output": {"type": "text"}})
    assert import_tasks(db, _new_data(tmp_path, ["owl"]), candidate="pets")["labels"] == 1
    folder = write(tmp_path / "imp", [{"data": {"image": "a.png"},
                                       "annotations": [written("hello", 7)]}])
    rows = label_rows(db)
    with pytest.raises(AbvocError, match=r"task 1: this image is already item \d+ of queue "
                                         r"'training', whose labels are candidate 'pets'") as exc:
        import_tasks(db, folder, candidate="ocr-text")
    assert exc.value.status == 400
    with db.reading() as s:
        new = s.scalars(select(RelabelItem).where(
            RelabelItem.prediction_id.like("import:%"))).one()
        assert (new.status, new.label) == ("done", "owl")
    assert label_rows(db) == rows
    again = import_tasks(db, folder, queue="verification", candidate="ocr-text")
    assert again["new_items"] == 1 and again["labels"] == 1  # another queue: an item of its own


# 4. A refused label names its task and annotation.

def test_a_bad_label_names_its_task_and_annotation(db: Database, tmp_path: Path) -> None:
    ids = add_items(db, 3)
    tasks = [{"data": {"abvoc_item_id": i}, "annotations": [annotated("dog")]} for i in ids]
    tasks[2]["annotations"].append(annotated("rose", 9))
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", tasks))
    assert exc.value.message.startswith(
        f"task 3 (abvoc item {ids[2]}), annotation 2: 'label' 'rose' is not one of")
    assert label_rows(db) == 0


@pytest.mark.parametrize("pipeline, value, words", [
    ({"output": {"type": "text"}}, "x" * 20_004, "'label' is 20004 characters"),
    ({"output": {"type": "number"}}, "many", "'many' is not a number"),
])
def test_a_bad_label_of_any_type_names_its_task(db: Database, tmp_path: Path,
                                                pipeline: dict[str, Any], value: str,
                                                words: str) -> None:
    item_id = other_item(db, "other", pipeline)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": item_id}, "annotations": [written(value)]}]))
    assert exc.value.message.startswith(f"task 1 (abvoc item {item_id}), annotation 1: {words}")


@pytest.mark.parametrize("as_given", [str, float, lambda i: True],
                         ids=["string", "float", "bool"])
def test_an_item_id_that_is_no_integer_says_so(db: Database, tmp_path: Path,
                                              as_given: Any) -> None:
    """An id given as "5" named an item that exists: saying it "is not a relabel item here"
    sent the user looking for a missing item rather than at the id's type."""
    (pets,) = add_items(db, 1)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": as_given(pets)}, "annotations": [annotated("dog")]}]))
    assert exc.value.status == 400
    assert exc.value.message.startswith("task 1: abvoc_item_id must be an integer item id")
    assert "is not a relabel item" not in exc.value.message
    assert label_rows(db) == 0


@pytest.mark.parametrize("item_id", [2**63, 0, -1], ids=["past-int64", "zero", "negative"])
def test_an_item_id_out_of_the_stores_range_is_no_item(db: Database, tmp_path: Path,
                                                       item_id: int) -> None:
    """2**63 reached the store and came back as an OverflowError traceback (SQLite)."""
    add_items(db, 1)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": item_id}, "annotations": [annotated("dog")]}]))
    assert exc.value.status == 400
    assert exc.value.message == f"task 1: abvoc_item_id {item_id!r} is not a relabel item here"
    assert label_rows(db) == 0


@pytest.mark.parametrize("who, words", [
    (["alice", "bob"], "'completed_by' must be a user id, an e-mail or an object"),
    ({"email": "a\nb@x.org"}, "'completed_by' must not contain control characters"),
    ("\ud800", "'completed_by' must be valid Unicode text")])
def test_an_annotator_abvoc_cannot_name_is_refused(db: Database, tmp_path: Path, who: Any,
                                                   words: str) -> None:
    """A list was stored as its Python repr, and a lone surrogate broke the store's reads."""
    item_id = add_items(db, 1)[0]
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, write(tmp_path / "imp", [
            {"data": {"abvoc_item_id": item_id}, "annotations": [annotated("dog", who)]}]))
    assert exc.value.message.startswith(f"task 1 (abvoc item {item_id}), annotation 1: {words}")
    assert label_rows(db) == 0


def test_two_long_e_mails_alike_in_their_start_are_two_annotators(db: Database,
                                                                   tmp_path: Path) -> None:
    """Names cut to the store's 100 characters made them one: the second's label was skipped
    as already given by that annotator."""
    item_id = add_items(db, 1)[0]
    start = "annotation.team." * 8
    folder = write(tmp_path / "imp", [{"data": {"abvoc_item_id": item_id}, "annotations": [
        annotated("dog", {"email": f"{start}alice@example.org"}),
        annotated("dog", {"email": f"{start}bob@example.org"})]}])
    assert import_tasks(db, folder)["labels"] == 2
    with db.reading() as s:
        names = set(s.scalars(select(RelabelLabel.annotator)))
    assert len(names) == 2 and all(len(n) <= 100 and n.startswith("labelstudio:annotation.")
                                   for n in names), names
    assert import_tasks(db, folder)["skipped"]["already_labeled"] == 2  # and once only


def test_an_item_whose_input_is_gone_is_neither_offered_nor_labeled(db: Database,
                                                                    tmp_path: Path) -> None:
    """As on abvoc's own pages: exported without its image and labeled blind, it was left
    done with a label no dataset export could write."""
    kept, gone = add_items(db, 2)
    with db.session() as s:
        blind_id = s.get(RelabelItem, gone).prediction_id
        s.execute(delete(PredictionInput).where(PredictionInput.prediction_id == blind_id))
    out = export_tasks(db, tmp_path / "ls")
    assert (out["tasks"], out["without_input"]) == (1, 1)
    exported = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [t["data"]["abvoc_item_id"] for t in exported] == [kept]
    folder = write(tmp_path / "imp", [{"data": {"abvoc_item_id": gone},
                                       "annotations": [annotated("dog", "zed")]}])
    imported = import_tasks(db, folder)
    assert imported["labels"] == 0 and imported["skipped"]["without_input"] == 1
    assert "1 on items whose input is no longer kept" in summary(imported)
    assert item(db, gone).status == "open" and label_rows(db) == 0
