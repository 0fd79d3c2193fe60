"""Metrics that follow the output type beyond labels: `text` answers are compared word by word;
a `number` candidate's absolute error is compared between arms (Welch, checked against scipy),
enters the decision, and is held against the offline MAE in the divergence report."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from scipy import stats

from core import events, receipts
from core.same_answer import same_output
from core.store.db import Database
from core.store.models import Candidate, Experiment
from evaluation.divergence import divergence_report
from evaluation.findings import FINDING_FIELDS
from evaluation.number_metrics import MAE_GAP_FIELDS
from evaluation.results import experiment_results
from evaluation.token_metrics import edit_distance
from tests.evaluation.helpers import SECRET, T0, add_experiment, aggregate_totals, apply, prediction


def typed_prediction(pid: str, value: Any, kind: str, arm: str = "control",
                     unit_id: str | None = None) -> dict[str, Any]:
    event = prediction(pid, arm=arm, candidate="cand-a" if arm == "control" else "cand-b",
                       confidence=None, unit_id=unit_id)
    event.update(output=value, output_type=kind)
    return events.validate_event(event)


def typed_correction(pid: str, truth: Any, kind: str) -> dict[str, Any]:
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth, output_type=kind,
                              receipt=receipts.sign(SECRET, pid))
    event["occurred_at"] = T0.isoformat()
    return event


def test_text_is_compared_by_words() -> None:
    assert same_output("the cat  sat", "the cat sat", "text")
    assert edit_distance("the cat sat", "the dog sat on", "text") == pytest.approx(2 / 4)
    # LaTeX keeps its own tokens: a brace is a token, spacing is not.
    assert same_output("x ^ { 2 }", "x^{2}", "latex") and not same_output("x^2", "x^{2}")
    assert edit_distance("x^2", "x^{2}", "latex") == pytest.approx(2 / 5)
    assert edit_distance("3.5", "3.0", "number") == 1.0


def test_text_corrections_feed_word_metrics(db: Database) -> None:
    exp = add_experiment(db)
    apply(db, [typed_prediction("p0", "the cat sat", "text"),
               typed_prediction("p1", "the cat sat", "text")])
    apply(db, [typed_correction("p0", "the  cat   sat", "text"),
               typed_correction("p1", "the dog sat on", "text")])
    totals = aggregate_totals(db, exp)
    assert totals["exact_match.sum"] == 1
    assert totals["token_edit_distance.sum"] == pytest.approx(0.5)  # by characters: 5/11
    with db.session() as s:
        figures = experiment_results(s, exp)["metrics"]["control"]["all"]
    assert figures["exact_match"] == 0.5 and figures["token_edit_distance"] == pytest.approx(0.25)


def test_an_empty_text_truth_is_matched_by_an_empty_answer_only(db: Database) -> None:
    """"" is the truth of an input with no text: the candidate that answered nothing is right,
    one that read words into it is wholly wrong, and one that failed is an error, not a match
    (its missing answer is stored as "" too)."""
    exp = add_experiment(db)
    failed = prediction("p2", confidence=None, error="timeout", output="")
    failed.update(output_type="text")
    apply(db, [typed_prediction("p0", "", "text"), typed_prediction("p1", "STOP", "text"),
               events.validate_event(failed)])
    apply(db, [typed_correction(pid, "", "text") for pid in ("p0", "p1", "p2")])
    totals = aggregate_totals(db, exp)
    assert totals["corrected.sum"] == 3 and totals["errors.sum"] == 1
    assert totals["exact_match"] == 2 and totals["exact_match.sum"] == 1
    assert totals["token_edit_distance.sum"] == pytest.approx(1.0)
    assert same_output("", "  ", "text") and edit_distance("", "", "text") == 0.0


def load_numbers(db: Database, primary: str = "correction_rate",
                 offline: dict[str, Any] | None = None,
                 per_unit: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """Control answers within N(0, 1) of the truth, treatment within N(0, 3): 80 each, from
    units of `per_unit` predictions."""
    rng = np.random.default_rng(3)
    with db.session() as s:
        for name in ("cand-a", "cand-b"):
            s.add(Candidate(name=name, version="1", pipeline={"output": {"type": "number"}},
                            offline_results=offline if name == "cand-a" else {},
                            created_at=T0, updated_at=T0))
    exp = add_experiment(db, primary_metric=primary)
    truths = np.round(rng.uniform(0, 100, 160), 3)
    answers = truths + np.concatenate([rng.normal(0, 1, 80), rng.normal(0, 3, 80)])
    arms = ["control"] * 80 + ["treatment"] * 80
    apply(db, [typed_prediction(f"p{i}", float(a), "number", arm, unit_id=f"u{i // per_unit}")
               for i, (a, arm) in enumerate(zip(answers, arms, strict=True))])
    apply(db, [typed_correction(f"p{i}", float(t), "number") for i, t in enumerate(truths)])
    errors = np.abs(answers - truths)
    return exp, errors[:80], errors[80:]


def test_absolute_error_is_compared_with_welch_and_stops_a_worse_arm(db: Database) -> None:
    exp, control, treatment = load_numbers(db)
    with db.session() as s:
        res = experiment_results(s, exp)
    assert [v["output_type"] for v in res["variants"]] == ["number", "number"]
    rec = next(r for r in res["comparisons"] if r["metric"] == "absolute_error"
               and r["slice"] == "all")
    want = stats.ttest_ind(treatment, control, equal_var=False)
    ci = want.confidence_interval(0.95)
    assert rec["kind"] == "mean" and rec["lower_is_better"]
    assert rec["difference"] == pytest.approx(treatment.mean() - control.mean(), rel=1e-9)
    assert rec["statistic"] == pytest.approx(want.statistic, rel=1e-9)
    assert rec["p_value"] == pytest.approx(want.pvalue, rel=1e-6)
    assert rec["ci_low"] == pytest.approx(ci.low, rel=1e-9)
    assert rec["ci_high"] == pytest.approx(ci.high, rel=1e-9)
    assert rec["verdict"] == "worse"
    assert {r["metric"] for r in res["comparisons"]} >= {"absolute_error", "squared_error"}
    decision = res["decision"]
    assert decision["arms"] == {"treatment": "stop"} and decision["action"] == "stop"
    assert any("absolute error" in r for r in decision["reasons"])


def test_absolute_error_as_the_primary_metric(db: Database) -> None:
    exp, _, _ = load_numbers(db, primary="absolute_error")
    with db.session() as s:
        res = experiment_results(s, exp)
    assert res["experiment"]["primary_metric"] == "absolute_error"
    assert res["decision"]["arms"] == {"treatment": "stop"}
    assert "significantly worse on absolute_error" in " ".join(res["decision"]["reasons"])
    assert res["power"]["treatment"]["error"] is None


def test_online_mae_against_offline_mae(db: Database) -> None:
    offline_errors = np.abs(np.random.default_rng(9).normal(0, 0.5, 50))
    mae = float(offline_errors.mean())
    rmse = float(np.sqrt(np.mean(offline_errors ** 2)))
    row = {"n": 50, "mae": mae, "rmse": rmse}
    offline = {"output_type": "number", "overall": row, "slices": {"printed/middle": row}}
    exp, control, _ = load_numbers(db, offline=offline)
    with db.session() as s:
        report = divergence_report(s, exp, tolerance=0.0)
    overall = next(r for r in report["slices"] if r["candidate"] == "cand-a"
                   and r["slice"] == "all")
    gap = overall["mae_gap"]
    assert tuple(gap) == MAE_GAP_FIELDS  # a table of slices has a column for each
    want = stats.ttest_ind(control, offline_errors, equal_var=False, alternative="greater")
    assert gap["online_mae"] == pytest.approx(control.mean(), rel=1e-9)
    assert gap["t"] == pytest.approx(want.statistic, rel=1e-9)
    assert gap["p_value"] == pytest.approx(want.pvalue, rel=1e-6)
    assert gap["df"] == pytest.approx(want.df, rel=1e-9)
    assert gap["flagged"] and overall["offline"]["mae"] == mae
    assert overall["online"]["mae"] == pytest.approx(control.mean(), rel=1e-9)
    found = [f for f in report["findings"] if f["kind"] == "error_gap"]
    assert [(f["candidate"], f["slice"]) for f in found] == [("cand-a", "all")]
    assert set(found[0]) <= {"rank", *FINDING_FIELDS}
    assert found[0]["severity"] == pytest.approx((control.mean() - mae) / control.mean())
    # Within a 200% tolerance the online MAE is no longer significantly worse.
    with db.session() as s:
        loose = divergence_report(s, exp, tolerance=2.0)
    assert not next(r for r in loose["slices"] if r["candidate"] == "cand-a"
                    and r["slice"] == "all")["mae_gap"]["flagged"]


COMPARED_BY_TYPE = [  # the output types of the two arms -> the matching metrics compared
    (("label", "label"), {"exact_match"}),
    (("json", "json"), {"exact_match"}),
    (("text", "label"), {"exact_match", "token_edit_distance"}),
    (("latex", "latex"), {"exact_match", "token_edit_distance"}),
    (("number", "number"), set()),
    (("label", None), {"exact_match", "token_edit_distance"}),  # one arm does not declare
]


def load_typed(db: Database, types: tuple[str | None, str | None], per_arm: int = 20) -> int:
    """Two arms whose candidates declare `types` (None: nothing said), `per_arm` label answers
    each, a third of them corrected."""
    with db.session() as s:
        for name, kind in zip(("cand-a", "cand-b"), types, strict=True):
            output = {"type": kind, "classes": ["yes", "no"]} if kind else None
            s.add(Candidate(name=name, version="1", pipeline={"output": output} if kind else {},
                            created_at=T0, updated_at=T0))
    exp = add_experiment(db)
    arms = ["control"] * per_arm + ["treatment"] * per_arm
    apply(db, [typed_prediction(f"p{i}", ("yes", "no")[i % 2], "label", arm)
               for i, arm in enumerate(arms)])
    apply(db, [typed_correction(f"p{i}", "yes", "label") for i in range(0, len(arms), 3)])
    return exp


@pytest.mark.parametrize(("types", "matching"), COMPARED_BY_TYPE,
                         ids=["-".join(str(t) for t in c[0]) for c in COMPARED_BY_TYPE])
def test_the_family_holds_only_the_matching_metrics_the_answers_are_judged_by(
        db: Database, types: tuple[str | None, str | None], matching: set[str]) -> None:
    """Token edit distance judges text and LaTeX only, exact match all but numbers: a metric
    no variant is judged by is left out of the comparisons (and of Holm's family), unless an
    arm does not say what it answers, or the experiment made it the primary metric."""
    exp = load_typed(db, types)
    with db.session() as s:
        compared = {r["metric"] for r in experiment_results(s, exp)["comparisons"]}
    assert compared & {"exact_match", "token_edit_distance"} == matching
    assert {"correction_rate", "error_rate", "latency_ms"} <= compared
    if "token_edit_distance" not in matching:
        with db.session() as s:
            s.get(Experiment, exp).primary_metric = "token_edit_distance"
        with db.session() as s:
            compared = {r["metric"] for r in experiment_results(s, exp)["comparisons"]}
        assert "token_edit_distance" in compared, "the primary metric is always compared"


def test_a_number_experiment_names_no_matching_metric_in_its_analysis_unit(
        db: Database) -> None:
    """Its answers are judged by their errors: the analysis unit listed token edit distance
    and exact match, which no arm has (their figures are null)."""
    exp, _, _ = load_numbers(db, per_unit=4)
    with db.session() as s:
        said = experiment_results(s, exp)["analysis_unit"]
    named = set(said["per_unit"]) | set(said["per_prediction"])
    assert "absolute_error" in named and "correction_rate" in named
    assert not named & {"exact_match", "token_edit_distance"}, said


def test_online_mae_is_held_against_offline_per_unit_where_units_send_several(
        db: Database) -> None:
    """Four requests per unit: the online side of the MAE test is the units' mean errors (the
    linearised values, with equal units exactly those means), as scipy's Welch test of them
    against the offline errors; counting each request as independent made it too sure."""
    offline_errors = np.abs(np.random.default_rng(9).normal(0, 0.5, 50))
    row = {"n": 50, "mae": float(offline_errors.mean()),
           "rmse": float(np.sqrt(np.mean(offline_errors ** 2)))}
    offline = {"output_type": "number", "overall": row, "slices": {}}
    exp, control, _ = load_numbers(db, offline=offline, per_unit=4)
    with db.session() as s:
        report = divergence_report(s, exp, tolerance=0.0)
    overall = next(r for r in report["slices"] if r["candidate"] == "cand-a"
                   and r["slice"] == "all")
    gap, unit_means = overall["mae_gap"], control.reshape(20, 4).mean(axis=1)
    want = stats.ttest_ind(unit_means, offline_errors, equal_var=False, alternative="greater")
    assert gap["analysis_unit"] == "unit" and gap["online_units"] == 20
    assert gap["online_n"] == 80 and gap["online_mae"] == pytest.approx(control.mean())
    assert gap["t"] == pytest.approx(want.statistic, rel=1e-9)
    assert gap["df"] == pytest.approx(want.df, rel=1e-9)
    assert gap["p_value"] == pytest.approx(want.pvalue, rel=1e-6)
    half = stats.t.ppf(0.975, 19) * unit_means.std(ddof=1) / np.sqrt(20)
    assert overall["online"]["mae_interval"] == pytest.approx(
        [control.mean() - half, control.mean() + half], rel=1e-9)
