"""Stage verdicts judged once: the worker stores the stage each truth blames as it joins it,
the divergence report counts the stored verdicts in SQL and gives what judging every truth at
each read gave, a verified label still overrides the correction, and truths stored before the
verdicts are judged as read until `abvoc db backfill-blame` stores theirs; the Inspector
judges one prediction as the report does."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app.cli import main
from core.store import schema
from core.store.db import Database
from core.store.models import Prediction, PredictionTruth
from dashboards import feeds
from dashboards.pages import inspector
from evaluation.attribution import STAGES
from evaluation.divergence import divergence_with_stages
from evaluation.stage_blame import NOBODY, judge_stored, stage_attribution
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction
from tests.evaluation.test_truth_rules import _label
from tests.support.dash_tree import component_text


def _answers(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"answers": [{"stage": s, "answer": a} for s, a in pairs]}


def _ocr(classes: list[str]) -> dict[str, Any]:
    """The OCR pipeline's stages for a row of symbols read left to right."""
    return {"detector": {"boxes": [[10 * i, 0, 10 * i + 8, 8] for i in range(len(classes))]},
            "recognizer": {"classes": classes},
            "aligner": {"relations": [[-1, "start", 1.0]]
                        + [[i, "right", 1.0] for i in range(len(classes) - 1)]},
            "converter": {"latex": "".join(classes)}}


def _mixed_events() -> list[dict[str, Any]]:
    """Predictions of a bundle (the encoder's or the head's error, or right), of the OCR
    pipeline (a symbol missed, a wrong symbol), with stages no rule reads, with none, and
    with stages no rule can parse; a correction for each."""
    bundle = {"b-enc": ("cat", "dog"), "b-head": ("cat", "dog"), "b-right": ("dog", "dog")}
    events, truths = [], {"b-enc": "bird", "b-head": "dog", "b-right": "dog"}
    for pid, (output, encoded) in bundle.items():
        events.append(prediction(pid, candidate="bundle", output=output, slice_="tabby",
                                 stages=_answers(("encoder", encoded), ("head", output))))
    ocr = {"o-missed": (["1", "+"], "1+2"), "o-wrong": (["1", "+", "3"], "1+2"),
           "o-right": (["1", "+", "2"], "1+2")}
    for pid, (classes, _) in ocr.items():
        events.append(prediction(pid, candidate="ocr", output="".join(classes),
                                 stages=_ocr(classes)))
        truths[pid] = ocr[pid][1]
    events += [prediction("plain", candidate="ocr", output="7"),
               prediction("noted", candidate="ocr", output="7", stages={"note": "answers"}),
               prediction("broken", candidate="ocr", output="7",
                          stages={"recognizer": "not a dict", "detector": 5})]
    truths.update(plain="8", noted="8", broken="8")
    return events + [correction(pid, truth) for pid, truth in truths.items()]


def _stored(db: Database) -> dict[str, tuple[str | None, list[str] | None]]:
    with db.reading() as s:
        rows = s.execute(select(PredictionTruth.prediction_id, PredictionTruth.blame,
                                PredictionTruth.blame_stages))
        return {pid: (blame, json.loads(names) if names else None) for pid, blame, names in rows}


def _report(db: Database) -> dict[str, Any]:
    with db.reading() as s:
        return stage_attribution(s, 1)


def _forget_verdicts(db: Database) -> None:
    """The truths as a store before schema 0032 holds them."""
    with db.session() as s:
        s.execute(update(PredictionTruth).values(blame=None, blame_stages=None))


def test_the_worker_stores_each_truth_s_verdict(db: Database) -> None:
    apply(db, _mixed_events())
    stored = _stored(db)
    both = ["encoder", "head"]
    assert stored["b-enc"] == ("encoder", both) and stored["b-head"] == ("head", both)
    assert stored["b-right"] == ("correct", both)
    assert stored["o-missed"] == ("detector", list(STAGES))
    assert stored["o-wrong"] == ("recognizer", list(STAGES))
    assert stored["o-right"] == ("correct", list(STAGES))
    # Nothing to judge, or nothing a rule can parse: judged, blaming nobody, and the stream
    # went on (every truth of the batch is stored).
    assert stored["plain"] == stored["noted"] == stored["broken"] == (NOBODY, None)
    assert len(stored) == 9


def test_a_correction_before_its_prediction_is_judged_when_they_meet(db: Database) -> None:
    events = _mixed_events()
    corrections = [e for e in events if e["event_type"] == "correction.submitted"]
    apply(db, corrections)  # held: no prediction yet
    assert _stored(db) == {}
    apply(db, [e for e in events if e not in corrections])
    assert _stored(db)["b-enc"] == ("encoder", ["encoder", "head"])
    assert _stored(db)["o-missed"] == ("detector", list(STAGES))


def test_the_report_counts_stored_verdicts_as_judging_each_read_did(db: Database) -> None:
    apply(db, _mixed_events())
    counted = _report(db)
    rows = {(r["candidate"], r["slice"]): r for r in counted["rows"]}
    assert rows[("bundle", "all")]["counts"] == {"encoder": 1, "head": 1}
    assert rows[("bundle", "all")]["with_truth"] == 3
    assert rows[("bundle", "tabby")]["errors"] == 2
    assert rows[("ocr", "all")]["counts"]["detector"] == 1
    assert rows[("ocr", "all")]["counts"]["recognizer"] == 1
    assert rows[("ocr", "all")]["with_truth"] == 3  # the unjudgeable three are not counted
    # A store from before the verdicts: each truth judged as the report reads it, the same.
    _forget_verdicts(db)
    assert _report(db) == counted
    # The backfill stores the verdicts the worker would have, once.
    with db.session() as s:
        assert judge_stored(s, limit=5) == (5, "noted")  # in prediction id order
    assert _report(db) == counted  # half stored, half judged as read: still the same
    with db.session() as s:
        assert judge_stored(s, "noted") == (4, "plain")
        assert judge_stored(s, "plain") == (0, "plain")
        assert judge_stored(s) == (0, "")  # from the start: every verdict is stored
    assert _report(db) == counted
    assert _stored(db)["b-enc"] == ("encoder", ["encoder", "head"])


def test_a_verified_label_overrides_the_stored_verdict(db: Database) -> None:
    apply(db, _mixed_events())
    # The customer said "dog" (the head's error); annotators verified "bird" for its input:
    # the encoder's error, as the report reads it, though the stored verdict says the head.
    _label(db, "b-head", "bird")
    assert _stored(db)["b-head"] == ("head", ["encoder", "head"])
    report = _report(db)
    rows = {(r["candidate"], r["slice"]): r for r in report["rows"]}
    assert rows[("bundle", "all")]["counts"] == {"encoder": 2, "head": 0}
    assert rows[("bundle", "all")]["with_truth"] == 3  # taken back once, counted once
    _forget_verdicts(db)  # a truth from before the verdicts, labeled: the label's, once
    assert _report(db) == report
    # A labeled prediction without a correction counts (a shadow's does not); a label that
    # agrees with the stored verdict changes nothing.
    apply(db, [prediction("b-new", candidate="bundle", output="cat", slice_="tabby",
                          stages=_answers(("encoder", "cat"), ("head", "cat"))),
               prediction("b-shadow", candidate="bundle", output="cat", shadow=True,
                          arm=None, stages=_answers(("encoder", "cat"), ("head", "cat")))])
    _label(db, "b-new", "dog")
    _label(db, "b-shadow", "dog")
    _label(db, "b-enc", "bird")
    rows = {(r["candidate"], r["slice"]): r for r in _report(db)["rows"]}
    assert rows[("bundle", "all")]["counts"] == {"encoder": 3, "head": 0}
    assert rows[("bundle", "all")]["with_truth"] == 4


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_command_stores_the_verdicts_of_older_truths(db: Database, database_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    apply(db, _mixed_events())
    _forget_verdicts(db)
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    runner = CliRunner()
    done = runner.invoke(main, ["db", "backfill-blame", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"judged": 9}
    assert "truths judged: 9/9 (100%)" in done.stderr  # progress, off a terminal
    assert _stored(db)["o-wrong"] == ("recognizer", list(STAGES))
    again = runner.invoke(main, ["db", "backfill-blame"])
    assert again.exit_code == 0 and "every truth's verdict is stored" in again.stdout


def test_the_inspector_judges_as_the_report_does(db: Database) -> None:
    apply(db, _mixed_events())
    assert feeds.prediction(db, "b-head")["blamed"] == "head"
    _label(db, "b-head", "bird")  # the annotators' label overrides the correction
    assert feeds.prediction(db, "b-head")["blamed"] == "encoder"
    assert feeds.prediction(db, "b-right")["blamed"] == "correct"
    assert feeds.prediction(db, "broken")["blamed"] is None  # no rule parses its stages
    # The label is its input's: a twin prediction of the same input, labeled through its own
    # item, is the truth of this one too; labels that disagree leave the correction standing.
    apply(db, [prediction("b-head-twin", candidate="bundle", output="cat",
                          stages=_answers(("encoder", "dog"), ("head", "cat")))])
    with db.session() as s:
        s.execute(update(Prediction).where(Prediction.prediction_id == "b-head-twin")
                  .values(input_hash="b-enc"))
    _label(db, "b-enc", "dog")  # the customer said bird for b-enc; annotators say dog
    twin = feeds.prediction(db, "b-head-twin")
    assert twin["verified"] == "dog" and twin["truth"] is None and twin["blamed"] == "head"
    shown = component_text(inspector._blame(twin))
    assert "Verified label of its input (the truth judged): dog" in shown
    assert "stage blamed: head" in shown and "no truth known yet" not in shown
    assert feeds.prediction(db, "b-enc")["blamed"] == "head"  # dog: the head's error
    _label(db, "b-enc", "cat", queue="training")  # a second label that disagrees
    assert feeds.prediction(db, "b-enc")["verified"] is None
    assert feeds.prediction(db, "b-enc")["blamed"] == "encoder"  # the correction stands


def test_truths_from_before_the_migration_are_judged_as_read(db: Database) -> None:
    """Through the real migration: down to 0031 drops the verdicts, up to head brings the
    columns back empty; the report is unchanged and the backfill stores them again."""
    apply(db, _mixed_events())
    counted = _report(db)
    schema.downgrade(db, "0031")
    schema.upgrade(db)
    assert set(_stored(db).values()) == {(None, None)}
    assert _report(db) == counted
    with db.session() as s:
        assert judge_stored(s) == (9, "plain")
    assert _stored(db)["b-enc"] == ("encoder", ["encoder", "head"])
    assert _report(db) == counted


def test_a_window_keeps_the_predictions_of_its_hours(db: Database) -> None:
    """As the rest of the divergence report keeps them (whole hours), the API's `since` and
    `until` included; the weekly report reads its week so."""
    exp = add_experiment(db)
    apply(db, [{**e, "experiment_id": exp} if e["event_type"] == "prediction.made" else e
               for e in _mixed_events()])  # all made at T0 (10:15)
    with db.reading() as s:
        whole = stage_attribution(s, exp)["rows"]
        assert whole and stage_attribution(s, exp, since=T0 - timedelta(hours=1))["rows"] == whole
        assert stage_attribution(s, exp, since=T0, until=T0)["rows"] == whole  # 10:00-11:00
        assert stage_attribution(s, exp, since=T0 + timedelta(hours=1))["rows"] == []
        assert stage_attribution(s, exp, until=T0 - timedelta(hours=1))["rows"] == []
        later = divergence_with_stages(s, exp, since=T0 + timedelta(hours=1))
        assert later["stage_attribution"]["rows"] == []
        assert divergence_with_stages(s, exp)["stage_attribution"]["rows"]
