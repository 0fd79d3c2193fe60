"""Built-in metric names are refused as outcome metrics and accepted as primary metrics exactly
when the results test them; outcome metrics follow the results' time window by each unit's
first sighting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scipy import stats

from core.builtin_metrics import PRIMARY_METRICS
from core.errors import AbvocError
from core.store.db import Database
from core.store.models import Experiment
from evaluation.metric_definitions import define_metric, list_metrics
from evaluation.results import experiment_results
from serving.experiment_spec import check_spec
from tests.evaluation.helpers import T0, add_experiment, prediction
from tests.evaluation.test_outcomes_worker import apply, outcome

ARMS = [{"name": "c", "candidate": "a", "weight": 1, "control": True},
        {"name": "t", "candidate": "b", "weight": 1}]


@pytest.mark.parametrize("name", PRIMARY_METRICS)
def test_every_built_in_name_is_refused_as_an_outcome_metric(db: Database, name: str) -> None:
    exp = add_experiment(db)
    with pytest.raises(AbvocError, match="built-in metric") as refused:
        define_metric(db, exp, {"name": name, "kind": "mean", "direction": "lower"})
    assert refused.value.status == 400
    assert list_metrics(db, exp) == []


@pytest.mark.parametrize("name", PRIMARY_METRICS)
def test_every_metric_the_results_test_is_a_valid_primary(name: str) -> None:
    assert check_spec({"name": "e", "arms": ARMS, "primary_metric": name})[
        "primary_metric"] == name


def test_a_primary_the_results_cannot_test_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(AbvocError) as refused:
        check_spec({"name": "e", "arms": ARMS, "primary_metric": "latency_p99_ms"})
    assert refused.value.status == 400
    assert "squared_error" in str(refused.value) and "latency_ms" in str(refused.value)


def test_a_stored_unknown_primary_is_replaced_out_loud(db: Database) -> None:
    exp = add_experiment(db, primary_metric="latency_p99_ms")
    apply(db, [prediction(f"{a}{i}", arm=a, unit_id=f"{a}u{i}") for a in ("control",
                                                                          "treatment")
               for i in range(20)])
    with db.session() as s:
        res = experiment_results(s, exp)
    assert res["experiment"]["primary_metric"] == "correction_rate"
    note = res["experiment"]["primary_metric_note"]
    assert "'latency_p99_ms'" in note and "'correction_rate' decides instead" in note
    with db.session() as s:
        s.get(Experiment, exp).primary_metric = "error_rate"
    with db.session() as s:
        known = experiment_results(s, exp)["experiment"]
    assert known["primary_metric"] == "error_rate" and known["primary_metric_note"] is None


def test_outcome_metrics_follow_the_window_by_first_sighting(db: Database) -> None:
    """Units first seen at T0 (10:15): their outcomes count in windows holding that hour, even
    the outcomes that came two days later; windows before and after the traffic hold none."""
    exp = add_experiment(db)
    define_metric(db, exp, {"name": "won", "kind": "proportion", "direction": "higher"})
    won = {"control": [i % 3 == 0 for i in range(30)], "treatment": [i % 2 == 0
                                                                     for i in range(40)]}
    batch = []
    for arm, values in won.items():
        for i, v in enumerate(values):
            batch.append(prediction(f"{arm}{i}", arm=arm, unit_id=f"{arm}-u{i}", at=T0))
            batch.append(outcome("won", int(v), unit=f"{arm}-u{i}", exp=exp,
                                 at=T0 + timedelta(days=2)))
    apply(db, batch)

    def units(since: timedelta, until: timedelta) -> dict[str, int]:
        with db.session() as s:
            res = experiment_results(s, exp, since=T0 + since, until=T0 + until)
        return {a: v["units"] for a, v in res["outcomes"]["won"]["arms"].items()}, res

    day = timedelta(days=1)
    assert units(-3 * day, -2 * day)[0] == {"control": 0, "treatment": 0}
    assert units(2 * day, 3 * day)[0] == {"control": 0, "treatment": 0}
    inside, res = units(-timedelta(minutes=15), timedelta(minutes=45))
    assert inside == {"control": 30, "treatment": 40}
    rec = next(r for r in res["comparisons"] if r["metric"] == "won")
    c, t = sum(won["control"]), sum(won["treatment"])
    table = [[t, 40 - t], [c, 30 - c]]
    z = stats.contingency.chi2_contingency(table, correction=False)
    assert rec["p_value"] == pytest.approx(z.pvalue, rel=1e-9)
    with db.session() as s:  # no window: every unit, as before
        whole = experiment_results(s, exp)["outcomes"]["won"]["arms"]
    assert {a: v["units"] for a, v in whole.items()} == {"control": 30, "treatment": 40}
