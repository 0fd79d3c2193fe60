"""`abvoc db backfill-unit-sums`: an experiment whose predictions were stored without unit sums
(before schema 0021) gets the sums the worker would have kept, its metrics go per unit, a
worker applying events meanwhile adds on top, and errors the store cannot tell stay per
prediction, said so."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from app.cli import main
from core.store.db import Database, utcnow
from core.store.models import ServedPrediction
from core.store.outcome_models import UnitSums
from evaluation.online import ALL, Variant
from evaluation.results import experiment_results
from evaluation.unit_backfill import rebuild, stale_experiments
from evaluation.unit_moments import STALE, UNWATCHED, load_moments
from tests.evaluation.helpers import (
    add_experiment,
    apply,
    as_stored_before_0023,
    correction,
    prediction,
)
from tests.evaluation.test_unit_analysis import clustered
from tests.support.flow import joined


def _forget_unit_sums(db: Database, experiment_id: int) -> None:
    """The store as an older worker left it: predictions, truths and aggregates, no unit sums."""
    with db.session() as s:
        s.execute(delete(UnitSums).where(UnitSums.experiment_id == experiment_id))


def _renamed(batch: list[dict[str, Any]], prefix: str, experiment_id: int) -> list[dict]:
    """The same traffic under other ids, in another experiment."""
    out = []
    for event in batch:
        e = {**event, "prediction_id": prefix + event["prediction_id"]}
        if "correction_id" in e:
            e["correction_id"] = prefix + e["correction_id"]
        else:
            e["experiment_id"] = experiment_id
        e["event_id"] = prefix + e["event_id"]
        out.append(e)
    return out


def _same_moments(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, moments in want.items():
        assert got[key] == pytest.approx(moments, rel=1e-12), key


def test_a_rebuild_gives_the_sums_the_worker_kept(db: Database) -> None:
    exp = add_experiment(db)
    batch, _ = clustered(seed=5, units=20, experiment_id=exp)
    apply(db, batch)
    with db.session() as s:
        kept = load_moments(s, exp)
        before = experiment_results(s, exp)
    assert before["analysis_unit"]["per_unit"]
    _forget_unit_sums(db, exp)
    with db.session() as s:
        assert stale_experiments(s) == [exp]
        stale = experiment_results(s, exp)
    assert stale["analysis_unit"]["per_unit"] == []
    assert set(stale["analysis_unit"]["per_prediction"].values()) == {STALE}

    seen: list[int] = []
    done = rebuild(db, exp, progress=seen.append)
    predictions = sum(e["event_type"] == "PredictionMade" for e in batch)
    assert (done.experiment_id, done.predictions) == (exp, predictions)
    assert seen[-1] == predictions
    with db.session() as s:
        assert stale_experiments(s) == []
        _same_moments(load_moments(s, exp), kept)
        after = experiment_results(s, exp)
    assert after["analysis_unit"] == before["analysis_unit"]
    for was, now in zip(before["comparisons"], after["comparisons"], strict=True):
        assert (now["metric"], now["slice"], now["analysis_unit"]) == \
            (was["metric"], was["slice"], was["analysis_unit"])
        if was["p_value"] is None:
            assert now["p_value"] is None
        else:
            assert now["p_value"] == pytest.approx(was["p_value"], rel=1e-9, abs=1e-12)


def test_a_worker_applying_events_meanwhile_adds_on_top(db: Database) -> None:
    """Half the traffic stored without unit sums, rebuilt while a worker applies the other half
    in small batches: the sums end as those of a store that kept them all along."""
    whole = add_experiment(db, name="whole")
    late = add_experiment(db, name="late", scope="late")
    batch, _ = clustered(seed=9, units=30, experiment_id=whole)
    apply(db, batch)
    copy = _renamed(batch, "late-", late)
    predictions = [e for e in copy if "correction_id" not in e]
    first = {e["prediction_id"] for e in predictions[: len(predictions) // 2]}
    apply(db, [e for e in copy if e["prediction_id"] in first])
    _forget_unit_sums(db, late)
    rest = [e for e in copy if e["prediction_id"] not in first]

    def worker() -> None:
        for i in range(0, len(rest), 7):
            apply(db, rest[i:i + 7])

    thread = threading.Thread(target=worker, name="applier", daemon=True)
    thread.start()
    rebuild(db, late)
    joined([thread], 120)
    with db.session() as s:
        _same_moments(load_moments(s, late), load_moments(s, whole))
        assert stale_experiments(s) == []


def test_events_applied_while_the_predictions_are_read_are_added_once(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predictions stored without unit sums, then some with them (an upgraded worker), then the
    worker commits a batch (new predictions, and corrections of predictions already read) in
    the middle of the rebuild's read: the rows end as if it had kept them all along."""
    import evaluation.unit_recount as recounting
    whole = add_experiment(db, name="whole")
    late = add_experiment(db, name="late", scope="late")
    batch, _ = clustered(seed=11, units=25, experiment_id=whole)
    apply(db, batch)
    copy = _renamed(batch, "late-", late)
    corrections = [e for e in copy if "correction_id" in e]
    predictions = [e for e in copy if "correction_id" not in e]
    early = predictions[: len(predictions) // 2]
    apply(db, early)
    _forget_unit_sums(db, late)
    upgraded = predictions[len(predictions) // 2: len(predictions) * 3 // 4]
    apply(db, upgraded)  # stored with their unit sums: in the snapshot twice, counted once
    monkeypatch.setattr(recounting, "CHUNK", 10)
    during = predictions[len(predictions) * 3 // 4:] + corrections
    applied: list[int] = []

    def worker_commits(read: int) -> None:
        if not applied:
            applied.append(apply(db, during))

    done = rebuild(db, late, progress=worker_commits)
    # the batch came after the snapshot
    assert applied and done.predictions == len(early) + len(upgraded)
    with db.session() as s:
        _same_moments(load_moments(s, late), load_moments(s, whole))


def test_errors_come_from_the_predictions_or_the_served_ledger_and_stay_per_prediction_where_neither_says(  # noqa: E501
        db: Database) -> None:
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    batch = []
    for u in range(12):
        for k in range(3):
            pid = f"p{u}-{k}"
            failed = "timeout" if (u + k) % 4 == 0 else None
            batch.append(prediction(pid, arm=("control", "treatment")[u % 2],
                                    candidate=("cand-a", "cand-b")[u % 2], unit_id=f"u{u}",
                                    error=failed, output="" if failed else "x^{2}"))
            if k == 0:
                batch.append(correction(pid, "x^{3}"))
    apply(db, batch)
    with db.session() as s:  # the ledger rows the API wrote for this traffic (guardrails watch)
        for e in batch:
            if e["event_type"] == "PredictionMade":
                s.add(ServedPrediction(prediction_id=e["prediction_id"], experiment_id=exp,
                                       arm=e["arm"], candidate=e["candidate"], version="1",
                                       created_at=utcnow(), latency_ms=10.0,
                                       error=e["error"] is not None))
        kept = load_moments(s, exp)
    # Stored before schema 0023, the predictions do not say they failed: the ledger does.
    as_stored_before_0023(db, *(e["prediction_id"] for e in batch if "correction_id" not in e))
    _forget_unit_sums(db, exp)
    rebuild(db, exp)
    with db.session() as s:
        _same_moments(load_moments(s, exp), kept)
        assert "error_rate" in experiment_results(s, exp)["analysis_unit"]["per_unit"]

    # A shadow's failure is in no watched ledger row, but its stored prediction says it.
    shadows = [prediction(f"s{u}-{k}", arm=None, candidate="cand-s", shadow=True,
                          unit_id=f"u{u}", error="boom" if k == 0 else None)
               for u in range(6) for k in range(2)]
    apply(db, shadows)
    with db.session() as s:
        kept = load_moments(s, exp)
    _forget_unit_sums(db, exp)
    rebuild(db, exp)
    with db.session() as s:
        _same_moments(load_moments(s, exp), kept)
        assert "error_rate" in experiment_results(s, exp)["analysis_unit"]["per_unit"]
    # Stored before 0023, neither says: its errors cannot be rebuilt.
    as_stored_before_0023(db, *(e["prediction_id"] for e in shadows))
    _forget_unit_sums(db, exp)
    rebuild(db, exp)
    with db.session() as s:
        unit = experiment_results(s, exp)["analysis_unit"]
    assert unit["per_prediction"] == {"error_rate": UNWATCHED}  # every prediction is held
    assert "correction_rate" in unit["per_unit"]


def test_the_command_rebuilds_the_stale_experiments(database_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    with Database(database_url) as db:
        kept_exp = add_experiment(db, name="kept")
        old_exp = add_experiment(db, name="old", scope="old")
        apply(db, clustered(seed=3, units=6, experiment_id=kept_exp)[0])
        apply(db, _renamed(clustered(seed=4, units=6, experiment_id=old_exp)[0], "o-", old_exp))
        _forget_unit_sums(db, old_exp)
    result = runner.invoke(main, ["db", "backfill-unit-sums", "--json"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert [d["experiment_id"] for d in done] == [old_exp] and done[0]["unit_rows"] > 0
    again = runner.invoke(main, ["db", "backfill-unit-sums"])
    assert again.exit_code == 0 and "hold its predictions" in again.stdout
    unknown = runner.invoke(main, ["db", "backfill-unit-sums", "--experiment", "999"])
    assert unknown.exit_code != 0 and "experiment 999 does not exist" in unknown.output


def test_a_rebuild_that_changes_only_errors_is_read_afresh(db: Database) -> None:
    """The moments read are kept while the unit rows are unchanged (a mark of their counts): a
    rebuild can change the errors alone, so the mark holds their sum too."""
    exp = add_experiment(db)
    apply(db, [prediction(f"e{k}", unit_id=f"u{k % 3}", error="boom" if k % 2 else None,
                          output="" if k % 2 else "x^{2}") for k in range(12)])
    as_stored_before_0023(db, *(f"e{k}" for k in range(12)))
    with db.session() as s:  # ledger rows that mark no failure: the rebuild counts none
        for k in range(12):
            s.add(ServedPrediction(prediction_id=f"e{k}", experiment_id=exp, arm="control",
                                   candidate="cand-a", version="1", created_at=utcnow(),
                                   latency_ms=10.0, error=False))
    control = (Variant("control", "cand-a", False), ALL, "error_rate")
    with db.session() as s:
        assert load_moments(s, exp)[control].sy == 6
    rebuild(db, exp)
    with db.session() as s:
        assert load_moments(s, exp)[control].sy == 0
