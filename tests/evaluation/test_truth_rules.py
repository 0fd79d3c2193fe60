"""One unit counted once per arm with or without a time window, and one truth per answer: a
verified label overrides the customer's correction, and an input whose verified labels disagree
is a conflict left out of the audited accuracy. On SQLite and PostgreSQL, through the worker's
real aggregates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select

from core.store.db import Database
from core.store.models import RelabelItem
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction

UNITS = {"control": 12, "treatment": 28}
SLICES = ("lab", "field")


def _two_slice_units(db: Database, seed: int = 3) -> dict[str, dict[str, set[str]]]:
    """Each unit sends four requests, each carrying a random one of two slices (every unit gets
    both at least once); the units per arm and slice."""
    rng = np.random.default_rng(seed)
    batch: list[dict[str, Any]] = []
    seen: dict[str, dict[str, set[str]]] = {a: {s: set() for s in SLICES} for a in UNITS}
    for arm, n in UNITS.items():
        cand = "cand-a" if arm == "control" else "cand-b"
        for u in range(n):
            picks = [SLICES[0], SLICES[1], *rng.choice(SLICES, 2)]
            for k, slice_ in enumerate(picks):
                unit = f"{arm}-u{u}"
                batch.append(prediction(f"{unit}-r{k}", arm=arm, candidate=cand,
                                        unit_id=unit, slice_=str(slice_),
                                        at=T0 + timedelta(minutes=k)))
                seen[arm][str(slice_)].add(unit)
    apply(db, batch)
    return seen


def test_a_unit_is_counted_once_per_arm_with_or_without_a_window(db: Database) -> None:
    exp = add_experiment(db)
    seen = _two_slice_units(db)
    with db.session() as s:
        whole = experiment_results(s, exp)
        window = experiment_results(s, exp, since=T0 - timedelta(days=1),
                                    until=T0 + timedelta(hours=1))
    want_p = stats.chisquare(list(UNITS.values())).pvalue
    for res in (whole, window):
        assert res["srm"]["units"] == UNITS
        assert res["srm"]["p_value"] == pytest.approx(want_p, rel=1e-12)
        assert res["srm"]["mismatch"] is False
        for arm, n in UNITS.items():
            assert res["metrics"][arm]["all"]["units"] == n
            for slice_ in SLICES:  # per slice: the units that sent a request in that slice
                assert res["metrics"][arm][slice_]["units"] == len(seen[arm][slice_])
    assert window["srm"]["p_value"] == whole["srm"]["p_value"]
    assert window["srm"]["slice_p_values"] == pytest.approx(whole["srm"]["slice_p_values"])
    # A window that misses the traffic counts no unit; one holding it, each unit once.
    with db.session() as s:
        before = experiment_results(s, exp, since=T0 - timedelta(days=2),
                                    until=T0 - timedelta(days=1))
    assert before["srm"]["units"] == {"control": 0, "treatment": 0}


def _label(db: Database, pid: str, label: str, queue: str = "verification",
           reasons: list[str] | None = None) -> None:
    """The item of `pid`'s input in `queue` done with `label` (the worker's own item where it
    queued one, as an annotator's or an admin's label leaves it)."""
    with db.session() as s:
        item = s.scalars(select(RelabelItem).where(RelabelItem.queue == queue,
                                                   RelabelItem.input_hash == pid[:16])).first()
        if item is None:
            item = RelabelItem(queue=queue, prediction_id=pid, input_hash=pid[:16],
                               experiment_id=1, reasons=reasons or ["correction"],
                               created_at=T0)
            s.add(item)
        item.status, item.label, item.labeled_at, item.annotator = "done", label, T0, "admin"


def _bounds(db: Database, exp: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with db.session() as s:
        res = experiment_results(s, exp)
        div = divergence_report(s, exp)
    online = {r["candidate"]: r["online"] for r in div["slices"] if r["slice"] == "all"}
    return ({arm: res["metrics"][arm]["all"] for arm in ("control", "treatment")},
            online)


def test_a_verified_label_overrides_the_customers_correction(db: Database) -> None:
    exp = add_experiment(db)
    assert exp == 1
    batch = []
    for arm, cand in (("control", "cand-a"), ("treatment", "cand-b")):
        for i in range(10):
            batch.append(prediction(f"{arm[0]}{i}", arm=arm, candidate=cand,
                                    output="setosa", slice_="lab"))
    batch[0] = prediction("c0", arm="control", candidate="cand-a", output="virginica",
                          slice_="lab")
    # c0: the customer confirms virginica, an admin resolves the input as versicolor.
    # t0: the customer says versicolor, the annotator rejects it: setosa was right.
    batch += [correction("c0", "virginica"), correction("t0", "versicolor")]
    apply(db, batch)
    before, online_before = _bounds(db, exp)
    assert before["control"]["accuracy_bound"] == pytest.approx(1.0)
    assert before["treatment"]["accuracy_bound"] == pytest.approx(0.9)
    _label(db, "c0", "versicolor")
    _label(db, "t0", "setosa")
    after, online = _bounds(db, exp)
    assert after["control"]["accuracy_bound"] == pytest.approx(0.9)
    assert after["control"]["known_wrong"] == 1 and after["control"]["truth_known"] == 1
    assert after["treatment"]["accuracy_bound"] == pytest.approx(1.0)
    assert after["treatment"]["known_wrong"] == 0 and after["treatment"]["exact_match"] == 1.0
    # The correction rate stays what customers did.
    assert after["control"]["corrections"] == after["treatment"]["corrections"] == 1
    assert online["cand-a"]["accuracy_bound"] == pytest.approx(0.9)
    assert online["cand-b"]["accuracy_bound"] == pytest.approx(1.0)
    assert online_before["cand-b"]["accuracy_bound"] == pytest.approx(0.9)


def test_an_input_whose_labels_disagree_is_a_conflict(db: Database) -> None:
    exp = add_experiment(db)
    batch = [prediction(f"c{i}", arm="control", candidate="cand-a", output="setosa",
                        slice_="lab") for i in range(4)]
    batch.append(correction("c0", "virginica"))
    apply(db, batch)
    # c0's input: the audit says setosa, the verification of the correction says virginica.
    _label(db, "c0", "setosa", queue="offline-test", reasons=["audit"])
    _label(db, "c0", "virginica", queue="verification")
    _label(db, "c1", "setosa", queue="offline-test", reasons=["audit"])
    with db.session() as s:
        res = experiment_results(s, exp)
    acc = res["online_accuracy"]
    assert acc["conflicts"] == 1
    audit = acc["variants"]["control"]["slices"]["all"]["audit"]
    assert (audit["n"], audit["correct"]) == (1, 1)  # c1 only: c0 has no truth
    # With no verified truth, c0's correction stands in the bound.
    assert res["metrics"]["control"]["all"]["known_wrong"] == 1
