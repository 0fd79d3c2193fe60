"""The worker turns events into relabel items by the rules: each reason to its queue, one item
per input, priority from the reasons, quotas, shadow disagreements in either arrival order,
divergent-slice sampling, the audit decided by the prediction id alone, and stage routing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.relabel import audited, share_of
from core.store.db import Database
from core.store.models import RelabelItem
from evaluation.relabel_enqueue import enqueue, route_label
from feedback import annotation, relabel_rules
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction
from tests.support.kept_inputs import keep_input

NOTHING = {"audit_rate": 0.0, "low_confidence_below": None, "divergent_slice_rate": 0.0,
           "second_annotator_share": 0.0}


def items(db: Database) -> dict[tuple[str, str], RelabelItem]:
    with db.session() as s:
        return {(i.queue, i.prediction_id): i for i in s.scalars(select(RelabelItem))}


def rules(db: Database, **body: Any) -> None:
    relabel_rules.put(db, {**NOTHING, **body})


def test_each_reason_feeds_its_queue(db: Database) -> None:
    rules(db, low_confidence_below=0.5)
    apply(db, [prediction("p1", confidence=0.2), prediction("p2", confidence=0.9),
               correction("p2", "y^{2}")])
    got = items(db)
    assert set(got) == {("training", "p1"), ("verification", "p2")}
    assert got[("training", "p1")].reasons == ["low_confidence"]
    assert got[("verification", "p2")].reasons == ["correction"]
    assert got[("training", "p1")].priority == 1.0 + 0.8  # weight + (1 - confidence)


def test_a_correction_before_its_prediction_is_enqueued_when_the_prediction_lands(
        db: Database) -> None:
    rules(db)
    apply(db, [correction("p1", "y")])
    assert items(db) == {}
    apply(db, [prediction("p1")])
    assert set(items(db)) == {("verification", "p1")}
    apply(db, [prediction("p1"), correction("p1", "z")])  # replay and a second correction
    assert len(items(db)) == 1


def test_one_item_per_input_with_every_reason(db: Database) -> None:
    rules(db, low_confidence_below=0.5)
    same = prediction("a" * 20, confidence=0.1, unit_id="u1")
    again = prediction("a" * 16 + "zzzz", confidence=0.3, unit_id="u2")  # same input hash
    assert same["input_hash"] == again["input_hash"]
    apply(db, [same, again, correction("a" * 20, "y")])
    got = items(db)
    # Two low-confidence predictions of one input are one training item; the correction of
    # one of them is a verification item of that input.
    assert sorted(q for q, _ in got) == ["training", "verification"]


def test_shadow_disagreement_in_either_order(db: Database) -> None:
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    rules(db)
    served = prediction("s1", experiment_id=exp, output="x", unit_id="u")
    shadow = prediction("s1-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                        shadow=True, output="y", unit_id="u")
    shadow["input_hash"] = served["input_hash"]
    apply(db, [served])
    apply(db, [shadow])  # the shadow lands later
    late = prediction("s2", experiment_id=exp, output="x", unit_id="v")
    early = prediction("s2-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                       shadow=True, output="y", unit_id="v")
    early["input_hash"] = late["input_hash"]
    apply(db, [early])
    apply(db, [late])  # the served answer lands later
    agree = prediction("s3", experiment_id=exp, output="x", unit_id="w")
    twin = prediction("s3-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                      shadow=True, output="x", unit_id="w")
    twin["input_hash"] = agree["input_hash"]
    apply(db, [agree, twin])
    got = items(db)
    assert set(got) == {("training", "s1"), ("training", "s2")}
    assert all(i.reasons == ["shadow_disagreement"] for i in got.values())


def test_a_shadow_is_held_against_its_own_requests_answer(db: Database) -> None:
    """A unit sent one input twice, a minute apart, and each request's shadow agreed with its
    served answer (the answers changed between the two). Each is compared with its own
    request's, the nearest in time: compared across requests they made two false
    disagreements."""
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    rules(db)
    later = T0 + timedelta(minutes=1)
    batch = [prediction("r1", experiment_id=exp, output="x", unit_id="u"),
             prediction("r1-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                        shadow=True, output="x", unit_id="u", at=T0 + timedelta(seconds=0.1)),
             prediction("r2", experiment_id=exp, output="y", unit_id="u", at=later),
             prediction("r2-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                        shadow=True, output="y", unit_id="u",
                        at=later + timedelta(seconds=0.1))]
    for event in batch:
        event["input_hash"] = "same-input"
        apply(db, [event])
    assert set(items(db)) == set()
    disagree = prediction("r3-shadow", experiment_id=exp, arm=None, candidate="cand-s",
                          shadow=True, output="x", unit_id="u",
                          at=later + timedelta(minutes=1, seconds=0.1))
    served = prediction("r3", experiment_id=exp, output="y", unit_id="u",
                        at=later + timedelta(minutes=1))
    for event in (disagree, served):
        event["input_hash"] = "same-input"
    apply(db, [disagree, served])
    assert set(items(db)) == {("training", "r3")}


def test_the_audit_depends_on_the_prediction_id_alone(db: Database) -> None:
    rules(db, audit_rate=0.3, corrections=False)
    batch = [prediction(f"q{i:03d}") for i in range(120)]
    corrections = [correction(f"q{i:03d}", "y") for i in range(0, 120, 2)]
    apply(db, batch + corrections)
    audited_ids = {pid for (q, pid) in items(db) if q == "offline-test"}
    expected = {f"q{i:03d}" for i in range(120) if audited(f"q{i:03d}", 0.3)}
    assert audited_ids == expected and 20 < len(expected) < 55
    corrected = {f"q{i:03d}" for i in range(0, 120, 2)}
    # Being corrected changes nothing: the corrected and uncorrected are audited alike.
    assert audited_ids & corrected == expected & corrected


def test_quota_keeps_the_most_urgent(db: Database) -> None:
    rules(db, low_confidence_below=0.9, quotas={"training": 2})
    apply(db, [prediction("c1", confidence=0.8)])
    apply(db, [prediction("c2", confidence=0.5)])
    apply(db, [prediction("c3", confidence=0.1)])  # more urgent: displaces c1
    apply(db, [prediction("c4", confidence=0.85)])  # less urgent than both: not taken
    with db.session() as s:
        status = {i.prediction_id: i.status for i in s.scalars(select(RelabelItem))}
        dropped = {i.prediction_id: i.dropped_at for i in s.scalars(select(RelabelItem))}
    assert status == {"c1": "dropped", "c2": "open", "c3": "open"}
    # when: the weekly report counts an item open only until it was dropped
    assert dropped["c1"] is not None and dropped["c2"] is None and dropped["c3"] is None


def test_a_batch_at_quota_replaces_the_weakest_with_its_most_urgent(db: Database) -> None:
    """One batch's contenders are weighed together: the most urgent fill the room left, then
    each next one replaces the weakest open item while it is more urgent (strongest against
    weakest); the rest are not taken. Each stored item is dropped at most once."""
    rules(db, low_confidence_below=0.99, quotas={"training": 5})
    apply(db, [prediction(f"old{i}", confidence=c) for i, c in enumerate((0.9, 0.8, 0.7, 0.6))])
    batch = [prediction(f"new{i}", confidence=c)
             for i, c in enumerate((0.95, 0.85, 0.65, 0.1, 0.75, 0.2))]
    apply(db, batch)
    with db.session() as s:
        status = {i.prediction_id: i.status for i in s.scalars(select(RelabelItem))}
    # Room for one: new3 (0.1). Then new5 (0.2) beats old0 (0.9), new2 (0.65) beats old1 (0.8),
    # new4 (0.75) does not beat old2 (0.7), so new1 and new0 are not weighed further.
    assert status == {"old0": "dropped", "old1": "dropped", "old2": "open", "old3": "open",
                      "new3": "open", "new5": "open", "new2": "open"}


def test_rules_per_experiment_override_the_default(db: Database) -> None:
    exp = add_experiment(db)
    rules(db)
    relabel_rules.put(db, {"audit_rate": 1.0}, experiment_id=exp)
    apply(db, [prediction("in-exp", experiment_id=exp), prediction("outside", experiment_id=None,
                                                                   arm=None)])
    assert set(items(db)) == {("offline-test", "in-exp")}


def test_divergent_slices_are_sampled(db: Database) -> None:
    exp = add_experiment(db)
    rules(db, divergent_slice_rate=0.5)
    batch = [prediction(f"d{i:03d}", experiment_id=exp, slice_="hand" if i % 2 else "print")
             for i in range(80)]
    apply(db, batch)
    assert items(db) == {}  # no divergence report flags a slice here
    with db.session() as s:
        enqueue(s, {e["prediction_id"] for e in batch},
                flagged_slices=lambda _s, _e: {("cand-a", "hand")})
    got = {pid for (q, pid) in items(db)}
    expected = {e["prediction_id"] for e in batch if e["slice"] == "hand"
                and share_of("divergent", e["prediction_id"]) < 0.5}
    assert got == expected and expected


def test_an_ocr_error_goes_to_the_blamed_stages_dataset(db: Database) -> None:
    rules(db)
    stages = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}
    apply(db, [prediction("o1", output="x^{2}", stages=stages), correction("o1", "y^{2}"),
               prediction("o2", output="x^{2}", stages=stages), correction("o2", "x_{2}")])
    got = items(db)
    assert ("stage:recognizer", "o1") in got and ("stage:aligner", "o2") in got
    assert got[("stage:recognizer", "o1")].reasons == ["stage_blame"]


def test_a_verified_label_goes_to_the_blamed_stages_dataset(db: Database) -> None:
    rules(db, audit_rate=1.0)
    stages = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}
    served = prediction("o3", output="x^{2}", stages=stages)
    with db.session() as s:  # the service keeps the input with the prediction it serves
        keep_input(s, "o3", served["input_hash"], kind="image")
    apply(db, [served])
    (item,) = items(db).values()
    assert annotation.claim(db, "ann")["id"] == item.id
    annotation.submit(db, item.id, "ann", "y^{2}")
    with db.session() as s:
        assert route_label(s, item.id) == "stage:recognizer"
        assert route_label(s, item.id) == "stage:recognizer"  # once: the same item
    routed = items(db)[("stage:recognizer", "o3")]
    assert routed.status == "done" and routed.label == "y^{2}" and routed.annotator == "ann"
    assert len(items(db)) == 2


def test_a_verified_label_leaves_a_stage_item_an_annotator_holds_to_them(db: Database) -> None:
    """It once settled the held item under its annotator, whose label was then refused (409);
    now their label is theirs, checked against the verified one: a disagreement is a review."""
    rules(db)
    stages = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}
    served = prediction("o4", output="x^{2}", stages=stages)
    with db.session() as s:
        keep_input(s, "o4", served["input_hash"], kind="image")
    apply(db, [served, correction("o4", "y^{2}")])
    held = annotation.claim(db, "stager", queue="stage:recognizer")
    checked = annotation.claim(db, "ann", queue="verification")
    assert held is not None and checked is not None
    annotation.submit(db, checked["id"], "ann", "y^{2}")
    with db.session() as s:
        assert route_label(s, checked["id"]) == "stage:recognizer"
    still = items(db)[("stage:recognizer", "o4")]
    assert (still.status, still.lease_owner, still.label) == ("leased", "stager", None)
    assert annotation.submit(db, held["id"], "stager", "z^{2}")["status"] == "review"


def test_the_batchs_own_rows_decide_as_the_stored_ones_would(db: Database) -> None:
    """The worker hands the rules the rows it just stored instead of reading them back: the
    items, reasons and priorities are those the stored predictions give."""
    rules(db, low_confidence_below=0.5, audit_rate=0.3, stage_datasets=["recognizer"])
    stages = {"detector": {"boxes": [[0, 0, 4, 4], [5, 0, 7, 2]]},
              "recognizer": {"classes": ["x", "2"]},
              "aligner": {"relations": [[-1, "root", 1.0], [0, "sup", 0.9]]}}
    batch = [prediction(f"k{i:02d}", confidence=i / 40, output="x^{2}",
                        stages=stages if i % 3 == 0 else None) for i in range(40)]
    batch += [correction(f"k{i:02d}", "y^{2}") for i in range(0, 40, 4)]
    apply(db, batch)

    def snapshot() -> dict:
        return {key: (i.reasons, i.priority, i.labels_needed) for key, i in items(db).items()}

    from_batch = snapshot()
    assert {q for q, _ in from_batch} >= {"training", "verification", "offline-test",
                                          "stage:recognizer"}
    with db.session() as s:
        s.execute(RelabelItem.__table__.delete())
    with db.session() as s:
        enqueue(s, {e["prediction_id"] for e in batch if "correction_id" not in e})
    assert snapshot() == from_batch
