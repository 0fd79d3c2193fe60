"""The annotators' queue: leases under concurrency (two annotators never get one item), an
expired lease returns the item, priority order, labels checked against the output type, skip,
flag, the second annotator and review, and agreement against statsmodels."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import delete, update
from statsmodels.stats.inter_rater import cohens_kappa

from core.errors import AbvocError, Conflict
from core.store.db import Database, utcnow
from core.store.models import Candidate, Correction, Prediction, PredictionInput, RelabelItem
from feedback import annotation, queue_listing
from feedback.agreement import agreement
from tests.support.kept_inputs import keep_input

CLASSES = ["cat", "dog", "owl"]
T0 = utcnow()


def add_items(db: Database, n: int, *, queue: str = "training", labels_needed: int = 1,
              corrected: dict[int, str] | None = None, priority=lambda i: 1.0,
              image: Callable[[int], bytes] | None = None) -> list[int]:
    """`n` items of a label candidate, prediction i answered 'cat'; `corrected` i -> truth.
    Each prediction's input is kept, as the service keeps it: the image `image(i)`, or a
    small PNG."""
    ids = []
    with db.session() as s:
        if s.get(Candidate, 1) is None:
            s.add(Candidate(id=1, name="pets", version="1", created_at=T0, updated_at=T0,
                            pipeline={"output": {"type": "label", "classes": CLASSES}}))
        for i in range(n):
            pid = f"{queue}-p{i}"
            s.add(Prediction(prediction_id=pid, event_id=f"e-{pid}", candidate="pets",
                             input_hash=f"h-{pid}", output="cat", output_type="label",
                             created_at=T0, slice="all", arm="control", experiment_id=1))
            keep_input(s, pid, f"h-{pid}", kind="image",
                       data=None if image is None else image(i))
            if corrected and i in corrected:
                s.add(Correction(correction_id=f"c-{pid}", event_id=f"ce-{pid}",
                                 prediction_id=pid, corrected_output=corrected[i],
                                 created_at=T0))
            item = RelabelItem(queue=queue, prediction_id=pid, input_hash=f"h-{pid}",
                               candidate="pets", experiment_id=1, slice="all",
                               reasons=["correction"], priority=priority(i), status="open",
                               labels_needed=labels_needed, created_at=T0)
            s.add(item)
            s.flush()
            ids.append(item.id)
    return ids


def test_two_annotators_never_get_one_item(db: Database) -> None:
    add_items(db, 30)
    got: dict[str, list[int]] = {}
    start = threading.Barrier(6)

    def annotate(who: str) -> None:
        start.wait()
        mine = got.setdefault(who, [])
        while (item := annotation.claim(db, who)) is not None:
            mine.append(item["id"])
            # One live lease per annotator: label the item to be given the next one.
            annotation.submit(db, item["id"], who, "cat")

    threads = [threading.Thread(target=annotate, args=(f"a{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    claimed = [i for ids in got.values() for i in ids]
    assert len(claimed) == 30 and len(set(claimed)) == 30, Counter(claimed).most_common(3)


def test_an_expired_lease_returns_the_item(db: Database) -> None:
    (item_id,) = add_items(db, 1)
    first = annotation.claim(db, "alice", lease_s=1)
    assert first is not None and first["lease"]["owner"] == "alice"
    assert annotation.claim(db, "bob") is None  # held
    time.sleep(1.2)
    again = annotation.claim(db, "bob")
    assert again is not None and again["id"] == item_id
    with pytest.raises(Conflict, match="is not leased to you"):  # bob holds it now
        annotation.submit(db, item_id, "alice", "dog")
    assert annotation.submit(db, item_id, "bob", "dog")["status"] == "done"


def test_a_label_after_ones_own_lease_ran_out_says_so(db: Database) -> None:
    """It said "not leased to you (status 'leased')", which read as a contradiction."""
    (item_id,) = add_items(db, 1)
    assert annotation.claim(db, "alice", lease_s=1)["id"] == item_id
    time.sleep(1.2)
    with pytest.raises(Conflict, match=f"your lease on relabel item {item_id} ran out"):
        annotation.submit(db, item_id, "alice", "dog")
    assert annotation.claim(db, "alice")["id"] == item_id  # back in the queue, as said


def test_claims_follow_priority_then_age(db: Database) -> None:
    ids = add_items(db, 5, priority=lambda i: [1.0, 3.0, 2.0, 3.0, 0.5][i])
    # One annotator each: an annotator holds one lease at most.
    order = [annotation.claim(db, f"a{i}")["id"] for i in range(5)]
    assert order == [ids[1], ids[3], ids[2], ids[0], ids[4]]


def test_labels_are_checked_against_the_output_type(db: Database) -> None:
    (item_id,) = add_items(db, 1, corrected={0: "dog"})
    view = annotation.claim(db, "a")
    assert view["output_type"] == "label" and view["classes"] == CLASSES
    assert view["served"]["output"] == "cat" and view["correction"]["corrected_output"] == "dog"
    with pytest.raises(AbvocError, match="'label' 'horse' is not one of"):
        annotation.submit(db, item_id, "a", "horse")
    done = annotation.submit(db, item_id, "a", "dog")
    assert done == {"item_id": item_id, "status": "done", "label": "dog", "verdict": "accept"}
    assert annotation.show(db, item_id)["label"] == "dog"


def test_skip_and_flag(db: Database) -> None:
    first, second = add_items(db, 2)
    assert annotation.claim(db, "a")["id"] == first
    annotation.skip(db, first, "a")
    assert annotation.claim(db, "a")["id"] == second  # a skipped item is not offered again
    assert annotation.claim(db, "b")["id"] == first
    with pytest.raises(AbvocError, match="reason"):
        annotation.flag(db, first, "b", "")
    assert annotation.flag(db, first, "b", "blurry image")["status"] == "flagged"
    assert queue_listing.listing(db, "flagged")[0]["note"] == "blurry image"
    assert annotation.resolve(db, first, "admin", "owl")["status"] == "done"


def test_second_annotator_agreement_and_review(db: Database) -> None:
    ids = add_items(db, 2, labels_needed=2, corrected={0: "dog", 1: "dog"})
    for who, labels in (("a", ["dog", "dog"]), ("b", ["dog", "owl"])):
        for _ in ids:
            item = annotation.claim(db, who)
            annotation.submit(db, item["id"], who, labels[ids.index(item["id"])])
    assert annotation.claim(db, "a") is None  # both labeled by a and b
    assert annotation.show(db, ids[0])["status"] == "done"
    assert annotation.show(db, ids[1])["status"] == "review"
    review = queue_listing.listing(db, "review")
    assert [r["id"] for r in review] == [ids[1]] and len(review[0]["acts"]) == 2
    with pytest.raises(Conflict):
        annotation.resolve(db, ids[0], "admin", "dog")  # done: nothing to resolve
    assert annotation.resolve(db, ids[1], "admin", "owl")["label"] == "owl"
    report = agreement(db)
    assert report["items_with_two_labels"] == 2 and report["exact_agreement"] == 0.5
    # a accepted both, b one: observed agreement 0.5 is what chance gives, so kappa is 0
    assert report["verdict_table"]["counts"] == [[1, 1], [0, 0]]
    assert report["kappa"] == pytest.approx(0.0)
    # "0 ± 0" read as certain disagreement: a's verdicts never varied, and the report says so.
    assert report["note"].startswith("the first annotator gave one verdict on every pair")


def test_kappa_matches_statsmodels(db: Database) -> None:
    # 10 corrected items, verdict pairs: 4 accept/accept, 1 accept/reject, 2 reject/accept,
    # 3 reject/reject
    truths = {i: "dog" for i in range(10)}
    ids = add_items(db, 10, labels_needed=2, corrected=truths)
    first = ["dog"] * 5 + ["owl"] * 5
    second = ["dog"] * 4 + ["owl"] + ["dog"] * 2 + ["owl"] * 3
    for who, labels in (("a", first), ("b", second)):
        while (item := annotation.claim(db, who)) is not None:
            annotation.submit(db, item["id"], who, labels[ids.index(item["id"])])
    report = agreement(db)
    table = np.array([[4, 1], [2, 3]])
    assert report["verdict_table"]["counts"] == table.tolist()
    assert report["kappa"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)
    assert report["kappa"] == pytest.approx(0.4, abs=1e-9)  # (0.7 - 0.5) / (1 - 0.5)
    assert report["note"] is None


def test_expired_leases_are_claimable_under_contention(db: Database) -> None:
    ids = add_items(db, 4)
    with db.session() as s:  # four leases that ran out long ago
        s.execute(update(RelabelItem).values(status="leased", lease_owner="gone",
                                             lease_until=utcnow() - timedelta(hours=1)))
    got = [annotation.claim(db, f"a{i}")["id"] for i in range(4)]
    assert sorted(got) == ids and annotation.claim(db, "z") is None


def test_an_item_whose_input_is_gone_is_never_offered(db: Database) -> None:
    """An item whose input is not kept would be labeled blind, and its label never exported:
    claims pass it by (even the more urgent one) and the queue's figures count it."""
    kept, gone = add_items(db, 2, priority=lambda i: [1.0, 2.0][i])
    with db.session() as s:  # the second keeps its input hash, but no input has that hash
        s.execute(delete(PredictionInput).where(PredictionInput.prediction_id == "training-p1"))
    (queue,) = annotation.queue_figures(db)["queues"]
    assert queue["queue"] == "training" and queue["open"] == 2 and queue["without_input"] == 1
    claimed = annotation.claim(db, "alice")
    assert claimed is not None and claimed["id"] == kept and claimed["input"] is not None
    assert annotation.claim(db, "bob") is None
    assert annotation.show(db, gone)["status"] == "open"
    (queue,) = annotation.queue_figures(db)["queues"]
    assert (queue["open"], queue["leased"], queue["without_input"]) == (1, 1, 1)
