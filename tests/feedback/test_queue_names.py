"""Queue names are checked in one place (core.relabel) by every function that takes one: an
import never stores items under a queue nobody works, and listing, claiming, agreement and
exports refuse a name that is no queue instead of answering as if it were an empty one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.errors import AbvocError
from core.relabel import PURPOSES, check_queue, check_queues, queue_problem
from core.store.db import Database
from core.store.models import RelabelItem
from feedback import annotation, queue_listing
from feedback.agreement import agreement
from feedback.export import export_snapshot
from feedback.label_studio import export_tasks, import_tasks
from tests.feedback.test_relabel_annotation import add_items
from tests.feedback.test_relabel_export import png

UNKNOWN = ("bogus", "Training", "training ", "stage:", "stage:" + "x" * 51, "default", "")
KNOWN = (*PURPOSES, "stage:recognizer", "stage:" + "x" * 50)


def _refused(exc: pytest.ExceptionInfo[AbvocError]) -> None:
    """A 400 whose message lists every valid name."""
    assert exc.value.status == 400
    assert "is not a queue" in exc.value.message
    assert all(p in exc.value.message for p in PURPOSES) and "stage:<stage>" in exc.value.message


@pytest.mark.parametrize("name", KNOWN)
def test_known_queues_pass(name: str) -> None:
    assert queue_problem(name) is None and check_queue(name) == name


@pytest.mark.parametrize("name", [*UNKNOWN, None, 5])
def test_unknown_queues_are_refused_with_the_valid_names(name: object) -> None:
    with pytest.raises(AbvocError) as exc:
        check_queue(name)
    _refused(exc)
    assert check_queues(None) is None and check_queues([]) is None
    # Once each, in one order: a dataset's version.json names a selection one way.
    assert check_queues(["verification", "training", "training"]) == ["training", "verification"]
    with pytest.raises(AbvocError):
        check_queues(["training", name])


def _new_data(tmp_path: Path) -> Path:
    folder = tmp_path / "imp"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(png(5))
    (folder / "tasks.json").write_text(json.dumps([{"data": {"image": "img/a.png"}}]))
    return folder


def _items(db: Database) -> int:
    with db.reading() as s:
        return int(s.scalar(select(func.count()).select_from(RelabelItem)) or 0)


@pytest.mark.parametrize("queue", ["bogus", "stage:", "default"])
def test_import_refuses_an_unknown_queue_and_stores_nothing(db: Database, tmp_path: Path,
                                                            queue: str) -> None:
    add_items(db, 1)
    folder = _new_data(tmp_path)
    with pytest.raises(AbvocError) as exc:
        import_tasks(db, folder, queue=queue, candidate="pets")
    _refused(exc)
    assert _items(db) == 1  # only the item that was there
    assert import_tasks(db, folder, queue="stage:recognizer", candidate="pets")["new_items"] == 1
    with db.reading() as s:
        assert s.scalar(select(RelabelItem.queue).where(
            RelabelItem.prediction_id.like("import:%"))) == "stage:recognizer"


def test_listing_claim_agreement_and_exports_refuse_unknown_queues(db: Database,
                                                                  tmp_path: Path) -> None:
    add_items(db, 2, queue="verification")
    for call in (lambda: queue_listing.listing(db, "open", "verfication"),
                 lambda: annotation.claim(db, "ann", "verfication"),
                 lambda: agreement(db, "verfication"),
                 lambda: export_tasks(db, tmp_path / "ls", ["verfication"]),
                 lambda: export_snapshot(db, tmp_path / "ds", "pets", ["verfication"])):
        with pytest.raises(AbvocError) as exc:
            call()
        _refused(exc)
    assert not (tmp_path / "ls").exists() and not (tmp_path / "ds").exists()
    assert queue_listing.listing(db, "open", "training") == []  # known, empty: no error
    assert len(queue_listing.listing(db, "open", "verification")) == 2
    assert annotation.claim(db, "ann", "verification") is not None
    assert agreement(db, "verification")["items_with_two_labels"] == 0
