"""A unit served in two arms (moved by a canary step or new weights) is left out of every arm's
outcome metrics, exposure counts of ``missing: zero`` included, and the results say how many;
the tests then match scipy's on the units that stayed in one arm. A unit that moved within one
slice and sent outcomes only by its unit id is left out too: its served predictions show it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import jsonschema_rs
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from app.openapi import openapi_document
from core import events, receipts
from core.store.db import Database
from dashboards.pages.experiment_notes import outcomes as outcome_notes
from evaluation.first_arm import adjust
from evaluation.metric_definitions import define_metric
from evaluation.results import experiment_results
from tests.evaluation.helpers import SECRET, T0, add_experiment, prediction
from tests.evaluation.test_ratio_one_unit import apply

LATER = T0 + timedelta(hours=2)
ARMS = ("control", "treatment")


def _outcome(exp: int, metric: str, value: float, *, unit: str | None = None,
             pid: str | None = None) -> dict[str, Any]:
    tied = {"prediction_id": pid, "receipt": receipts.sign(SECRET, pid)} if pid \
        else {"unit_id": unit}
    return events.make_event(events.OUTCOME_RECORDED, outcome_id=uuid.uuid4().hex,
                             experiment_id=exp, metric=metric, value=value,
                             observed_at=LATER.isoformat(), **tied)


def _feed(db: Database) -> tuple[int, dict[str, dict[str, float]], set[str]]:
    """40 units served in one arm, revenue from some; units moved from control to treatment
    (outcomes tied to their later prediction, or by unit; first served in two arms in two
    slices); one unit moved within a slice whose outcome names only the unit. Returns each
    arm's revenue per unit that counts (0 where none) and the moved units, which do not."""
    exp = add_experiment(db)
    define_metric(db, exp, {"name": "revenue", "kind": "mean", "combine": "sum",
                            "missing": "zero", "direction": "higher"})
    define_metric(db, exp, {"name": "bought", "kind": "proportion", "direction": "higher"})
    batch, counted = [], {arm: {} for arm in ARMS}
    rng = np.random.default_rng(3)
    for i in range(40):
        unit, arm = f"stay-{i}", ARMS[i % 2]
        batch.append(prediction(f"p-{unit}", experiment_id=exp, arm=arm, unit_id=unit))
        value = float(rng.integers(1, 50)) if rng.random() < 0.6 else 0.0
        if value:
            batch += [_outcome(exp, "revenue", value, unit=unit),
                      _outcome(exp, "bought", 1.0, unit=unit)]
        counted[arm][unit] = value
    moved = set()
    for i in range(6):  # control first, then treatment after the split changed
        unit = f"moved-{i}"
        moved.add(unit)
        batch += [prediction(f"p1-{unit}", experiment_id=exp, arm="control", unit_id=unit),
                  prediction(f"p2-{unit}", experiment_id=exp, arm="treatment", unit_id=unit,
                             at=LATER),
                  _outcome(exp, "revenue", 100.0, pid=f"p2-{unit}"),
                  _outcome(exp, "bought", 1.0, pid=f"p2-{unit}")]
        if i % 2:
            batch.append(_outcome(exp, "revenue", 7.0, unit=unit))
    moved.add("sliced")  # first served in control in one slice, in treatment in another
    batch += [prediction("p1-sliced", experiment_id=exp, arm="control", unit_id="sliced"),
              prediction("p2-sliced", experiment_id=exp, arm="treatment", unit_id="sliced",
                         slice_="handwritten/long", at=LATER)]
    # Moved within one slice, and its outcome names only the unit: its predictions show the move.
    moved.add("quiet")
    batch += [prediction("p1-quiet", experiment_id=exp, arm="control", unit_id="quiet"),
              prediction("p2-quiet", experiment_id=exp, arm="treatment", unit_id="quiet",
                         at=LATER),
              _outcome(exp, "revenue", 30.0, unit="quiet")]
    apply(db, batch)
    return exp, counted, moved


def test_units_served_in_two_arms_are_left_out_of_outcome_metrics(db: Database) -> None:
    exp, counted, moved = _feed(db)
    with db.session() as s:
        res = experiment_results(s, exp)
    several = res["units_in_several_arms"]
    units = 40 + len(moved)
    assert several["units"] == len(moved) == 8
    assert several["share"] == pytest.approx(8 / units)
    assert "8 unit(s) (16.7% of the experiment's) were served in more than one arm" \
        in several["note"] and "since=" in several["note"]
    shown = {p.id: p.children for p in outcome_notes(res, "all")}  # the Experiments page's
    assert shown["exp-outcomes-several-arms"] == f"Note: {several['note']}."
    revenue, bought = res["outcomes"]["revenue"]["arms"], res["outcomes"]["bought"]["arms"]
    for arm in ARMS:
        values = np.array(list(counted[arm].values()))
        assert revenue[arm]["units"] == values.size  # exposed, less the moved units
        assert revenue[arm]["reported"] == int((values > 0).sum())
        assert revenue[arm]["mean"] == pytest.approx(values.mean())
        assert revenue[arm]["variance"] == pytest.approx(values.var(ddof=1))
        # skip: the units that reported it, none of them moved
        assert bought[arm]["units"] == sum(1 for v in counted[arm].values() if v)
    rec = next(r for r in res["comparisons"] if r["metric"] == "revenue")
    c, t = (np.array(list(counted[a].values())) for a in ARMS)
    welch = stats.ttest_ind(t, c, equal_var=False)
    assert (rec["n_control"], rec["n_treatment"]) == (c.size, t.size)
    assert rec["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)


def test_no_outcome_metric_no_count_and_no_move_no_note(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [prediction("p1", experiment_id=exp, arm="control", unit_id="u"),
               prediction("p2", experiment_id=exp, arm="treatment", unit_id="u",
                          slice_="handwritten/long")])
    with db.session() as s:
        assert experiment_results(s, exp)["units_in_several_arms"] is None
    define_metric(db, exp, {"name": "revenue", "kind": "mean", "direction": "higher"})
    with db.session() as s:
        assert experiment_results(s, exp)["units_in_several_arms"]["units"] == 1
    other = add_experiment(db, name="other", scope="other")
    define_metric(db, other, {"name": "revenue", "kind": "mean", "direction": "higher"})
    apply(db, [prediction("q1", experiment_id=other, arm="control", unit_id="u")])
    with db.session() as s:
        assert experiment_results(s, other)["units_in_several_arms"] == {
            "units": 0, "share": 0.0, "note": None}


def test_counted_in_their_first_arm_as_a_sensitivity_figure(db: Database) -> None:
    """Beside the results (moved units left out), each outcome metric with the moved units
    counted in their first arm (control here) with every outcome they sent, from either arm:
    the same Welch test as scipy's on those values."""
    exp, counted, _ = _feed(db)
    with db.session() as s:
        res = experiment_results(s, exp)
    several = res["units_in_several_arms"]
    figures = {f["metric"]: f for f in several["first_arm"]}
    revenue = figures["revenue"]
    # moved-i: 100 (tied to its treatment prediction) + 7 by unit for odd i; `sliced` sent
    # nothing (a zero: exposed, missing zero); `quiet` 30 by unit
    moved = [100.0 + 7.0 * (i % 2) for i in range(6)] + [0.0, 30.0]
    c = np.array([*counted["control"].values(), *moved])
    t = np.array(list(counted["treatment"].values()))
    welch = stats.ttest_ind(t, c, equal_var=False)
    arms = revenue["arms"]
    assert (arms["control"]["units_first_arm"], arms["treatment"]["units_first_arm"]) == (
        c.size, t.size)
    assert arms["control"]["units_left_out"] == c.size - len(moved)
    assert arms["control"]["mean_first_arm"] == pytest.approx(c.mean())
    (cmp,) = revenue["comparisons"]
    assert cmp["arm"] == "treatment"
    assert cmp["first_arm"]["difference"] == pytest.approx(t.mean() - c.mean())
    assert cmp["first_arm"]["p"] == pytest.approx(welch.pvalue, rel=1e-9)
    left = next(r for r in res["comparisons"] if r["metric"] == "revenue")
    assert cmp["left_out"]["p"] == pytest.approx(left["p_value"], rel=1e-9)
    # skip: only the units that reported it; the six moved ones bought, in control now
    bought = figures["bought"]["arms"]["control"]
    assert bought["units_first_arm"] == bought["units_left_out"] + 6
    assert "Counted in their first arm instead (intention to treat), with all their " \
           "outcomes: 'revenue': treatment - control " in several["note"]
    # 'bought' is 1 for every unit that reported it: untested, so Holm's family is one
    assert figures["bought"]["comparisons"][0]["first_arm"]["p_holm"] is None
    assert cmp["first_arm"]["p_holm"] == cmp["first_arm"]["p"]
    assert f"(p {welch.pvalue:.3g}, Holm {welch.pvalue:.3g}) counted in their first arm" in \
        several["note"]
    document = openapi_document()  # as GET …/results serves it
    validator = jsonschema_rs.validator_for({"$ref": "#/components/schemas/ResultsReport",
                                             "components": document["components"]})
    body = json.loads(json.dumps(res, default=str))
    assert [e.message for e in validator.iter_errors(body)] == []


def test_a_window_counts_only_the_moved_units_first_seen_in_it(db: Database) -> None:
    exp, _, _ = _feed(db)
    with db.session() as s:
        res = experiment_results(s, exp, since=LATER)  # every unit was first seen at T0
    arms = {f["metric"]: f for f in res["units_in_several_arms"]["first_arm"]}["revenue"]["arms"]
    assert arms["control"]["units_first_arm"] == arms["control"]["units_left_out"] == 0


def test_holm_over_every_metric_and_treatment_of_each_side() -> None:
    """`p_holm` is statsmodels' Holm over one side's tested comparisons (metrics x
    treatments), the untested ones (p None) left out of the family."""
    p_first = [[0.01, 0.04], [0.03, None], [0.2, 0.001]]
    p_left = [[0.02, 0.5], [None, None], [0.04, 0.03]]

    def side(p: float | None) -> dict[str, Any]:
        return {"difference": None if p is None else 1.0, "interval": [None, None], "p": p,
                "p_holm": None, "error": None}

    figures = [{"metric": f"m{i}", "comparisons": [
        {"arm": arm, "first_arm": side(first), "left_out": side(left)}
        for arm, first, left in zip(("b", "c"), firsts, lefts, strict=True)]}
        for i, (firsts, lefts) in enumerate(zip(p_first, p_left, strict=True))]
    adjust(figures)
    for name, p in (("first_arm", p_first), ("left_out", p_left)):
        flat = [x for row in p for x in row]
        tested = [x for x in flat if x is not None]
        expected = iter(multipletests(tested, method="holm")[1])
        got = [c[name]["p_holm"] for f in figures for c in f["comparisons"]]
        assert got == [None if x is None else pytest.approx(next(expected), rel=1e-12)
                       for x in flat]

