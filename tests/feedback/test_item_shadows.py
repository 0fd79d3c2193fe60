"""A relabel item shows the shadows' answers to its own request: a customer who sends the same
input again in the experiment makes more shadow answers to it (maybe by a later shadow
version), and neither the annotator's item view nor the Label Studio export may list those."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from core.store.db import Database, utcnow
from core.store.models import Candidate, Prediction, PredictionInput, RelabelItem, ServedPrediction
from feedback import annotation
from feedback.label_studio import export_tasks
from tests.feedback.test_relabel_export import png

T0 = utcnow() - timedelta(hours=1)
PETS = {"output": {"type": "label", "classes": ["cat", "dog", "owl"]}}


def answer(s: Session, pid: str, candidate: str, output: str, at: float, *,
           shadow: bool = False, version: str = "1", unit: str = "user-42",
           experiment: int = 1) -> None:
    """A stored answer to input 'h-img' at T0 + `at` seconds, with its ledger version."""
    when = T0 + timedelta(seconds=at)
    s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate=candidate,
                     input_hash="h-img", output=output, output_type="label", shadow=shadow,
                     arm=None if shadow else "control", unit_id=unit, failed=False,
                     experiment_id=experiment, slice="all", created_at=when))
    s.add(ServedPrediction(prediction_id=pid, candidate=candidate, version=version,
                           experiment_id=experiment, created_at=when))


def two_requests(db: Database) -> tuple[int, int]:
    """user-42 sends one image twice, a minute apart; each request is served by 'pets' and
    shadowed by 'big' and 'tiny' ('big' at a new version by the second). Items of both."""
    with db.session() as s:
        for cid, name in enumerate(("pets", "big", "tiny"), 1):
            s.add(Candidate(id=cid, name=name, version="1", created_at=T0, updated_at=T0,
                            pipeline=PETS))
        s.add(PredictionInput(prediction_id="served-1", input_hash="h-img", kind="image",
                              data=png(3), created_at=T0))
        answer(s, "served-1", "pets", "cat", 0.0)
        answer(s, "big-1", "big", "dog", 0.4, shadow=True)
        answer(s, "tiny-1", "tiny", "cat", 0.2, shadow=True)
        answer(s, "served-2", "pets", "cat", 60.0)
        answer(s, "big-2", "big", "owl", 60.3, shadow=True, version="2")
        answer(s, "tiny-2", "tiny", "dog", 60.2, shadow=True)
        # The same input by another unit, and in another experiment: never this item's.
        answer(s, "big-other-unit", "big", "owl", 0.1, shadow=True, unit="user-7")
        answer(s, "big-other-exp", "big", "owl", 0.1, shadow=True, experiment=2)
        ids = []
        for queue, pid in (("verification", "served-1"), ("training", "served-2")):
            item = RelabelItem(queue=queue, prediction_id=pid, input_hash="h-img",
                               candidate="pets", experiment_id=1, slice="all",
                               reasons=["correction"], priority=1.0, status="open",
                               labels_needed=1, created_at=T0)
            s.add(item)
            s.flush()
            ids.append(item.id)
    return ids[0], ids[1]


def test_an_item_shows_the_shadows_of_its_own_request(db: Database) -> None:
    first, second = two_requests(db)
    shown = annotation.show(db, first)["shadows"]
    assert [(x["candidate"], x["prediction_id"], x["output"]) for x in shown] == [
        ("big", "big-1", "dog"), ("tiny", "tiny-1", "cat")]
    shown = annotation.show(db, second)["shadows"]
    assert [(x["candidate"], x["prediction_id"], x["output"]) for x in shown] == [
        ("big", "big-2", "owl"), ("tiny", "tiny-2", "dog")]


def test_label_studio_offers_the_shadows_of_the_items_request_once(db: Database,
                                                                    tmp_path: Path) -> None:
    first, second = two_requests(db)
    export_tasks(db, tmp_path / "ls")
    tasks = {t["data"]["abvoc_item_id"]: t
             for t in json.loads((tmp_path / "ls" / "tasks.json").read_text())}
    offered = {item: [(p["model_version"], p["result"][0]["value"]["choices"][0])
                      for p in tasks[item]["predictions"]] for item in (first, second)}
    assert offered[first] == [("pets v1", "cat"), ("big v1 (shadow)", "dog"),
                              ("tiny v1 (shadow)", "cat")]
    assert offered[second] == [("pets v1", "cat"), ("big v2 (shadow)", "owl"),
                               ("tiny v1 (shadow)", "dog")]
