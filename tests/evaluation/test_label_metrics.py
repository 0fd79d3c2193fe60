"""A `label` candidate's online metrics: confusion counts (uncorrected served answers on the
diagonal, as the accuracy bound counts them) and the per-class shift of its predicted classes
against its offline label shares, in the results and the divergence report, on SQLite and
PostgreSQL; the test statistics checked against scipy and statsmodels."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import Table
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from core import events, receipts
from core.output_types import OutputKind
from core.store.db import Database
from core.store.models import Candidate, ParkedEvent, RelabelItem
from evaluation import aggregation as agg
from evaluation.candidate_facts import CandidateFacts
from evaluation.divergence import divergence_report
from evaluation.label_metrics import confusion, label_block, prediction_shift
from evaluation.online import Cell, metrics
from evaluation.results import experiment_results
from tests.evaluation.helpers import (
    SECRET,
    T0,
    add_candidate,
    add_experiment,
    apply,
    correction,
    prediction,
)

CLASSES = ["a", "b", "c"]
SLICE = "printed/middle"
OFFLINE_SHARES = {"a": 0.5, "b": 0.3, "c": 0.2}
OFFLINE_N = 200
OFFLINE_ANSWERS = {"a": 0.45, "b": 0.35, "c": 0.2}  # what the candidate answered offline


def add_label_candidate(db: Database, name: str, classes: list[str] = CLASSES) -> None:
    offline = {"output_type": "label",
               "overall": {"n": OFFLINE_N, "accuracy": 0.9, "exact_match": 0.9,
                           "output_shares": OFFLINE_ANSWERS},
               "slices": {SLICE: {"n": OFFLINE_N, "accuracy": 0.9, "exact_match": 0.9,
                                  "label_shares": OFFLINE_SHARES}},
               "label_shares": OFFLINE_SHARES}
    with db.session() as s:
        s.add(Candidate(name=name, version="1", offline_results=offline,
                        pipeline={"output": {"type": "label", "classes": classes}},
                        created_at=T0, updated_at=T0))


def label_prediction(pid: str, answer: str, arm: str, candidate: str,
                     shadow: bool = False) -> dict[str, Any]:
    # A bundle's stages are named: the answer is a class by its type, not by its shape.
    event = prediction(pid, arm=None if shadow else arm, candidate=candidate, shadow=shadow,
                       output=answer, slice_=SLICE, stages={"classify": {"latency_ms": 1.0}})
    event["output_type"] = "label"
    return events.validate_event(event)


def label_correction(pid: str, truth: str) -> dict[str, Any]:
    event = events.make_event(events.CORRECTION_SUBMITTED, correction_id=uuid.uuid4().hex,
                              prediction_id=pid, corrected_output=truth, output_type="label",
                              receipt=receipts.sign(SECRET, pid))
    event["occurred_at"] = (T0 + timedelta(minutes=1)).isoformat()
    return event


# Control: answers a x5, b x3, c x2; corrections a->b, a->c, b->a and one c->c that confirms.
CONTROL = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
CONTROL_TRUTHS = {0: "b", 1: "c", 5: "a", 8: "c"}
# Treatment: over-predicts a (36 of 40), corrections move four of its a's to b.
TREATMENT = ["a"] * 36 + ["b"] * 3 + ["c"]
TREATMENT_TRUTHS = {0: "b", 1: "b", 2: "b", 3: "b"}


def load_label_experiment(db: Database) -> int:
    add_label_candidate(db, "cand-a")
    add_label_candidate(db, "cand-b")
    exp = add_experiment(db)
    batch = [label_prediction(f"c{i}", v, "control", "cand-a") for i, v in enumerate(CONTROL)]
    batch += [label_prediction(f"t{i}", v, "treatment", "cand-b")
              for i, v in enumerate(TREATMENT)]
    apply(db, batch)
    apply(db, [label_correction(f"c{i}", t) for i, t in CONTROL_TRUTHS.items()]
          + [label_correction(f"t{i}", t) for i, t in TREATMENT_TRUTHS.items()])
    return exp


def _expected_shift(online: list[str]) -> dict[str, Any]:
    """The shift figures computed independently: scipy's chi-square of homogeneity, statsmodels'
    adjusted residuals and Holm adjustment."""
    counts = np.array([online.count(c) for c in CLASSES], float)
    table = np.vstack([np.array([OFFLINE_SHARES[c] for c in CLASSES]) * OFFLINE_N, counts])
    chi2 = stats.chi2_contingency(table, correction=False)
    residuals = Table(table).standardized_resids[1]
    p = 2 * stats.norm.sf(np.abs(residuals))
    return {"chi2": chi2.statistic, "p": chi2.pvalue, "dof": chi2.dof, "residuals": residuals,
            "holm": multipletests(p, method="holm")[1], "shares": counts / counts.sum()}


def test_confusion_counts_and_shift_in_results(db: Database) -> None:
    exp = load_label_experiment(db)
    with db.session() as s:
        res = experiment_results(s, exp)
    assert [v["output_type"] for v in res["variants"]] == ["label", "label"]
    control = res["label_metrics"]["control"]
    assert control["candidate"] == "cand-a" and control["classes"] == CLASSES
    table = control["slices"]["all"]["confusion"]
    assert table["classes"] == CLASSES
    # rows: answered a, b, c; columns: true a, b, c
    assert table["with_truth"] == [[0, 1, 1], [1, 0, 0], [0, 0, 1]]
    assert table["uncorrected"] == {"a": 3, "b": 2, "c": 1}
    assert table["counts"] == [[3, 1, 1], [1, 2, 0], [0, 0, 2]]
    assert table["uncorrected_counted_as"] == "right"
    assert "accuracy_bound" in table["assumption"]
    assert table["predictions"] == 10 and table["truths"] == 4
    assert table["truths_outside_table"] == 0
    assert table["accuracy"] == pytest.approx(0.7)
    assert table["accuracy_with_truth"] == pytest.approx(0.25)
    # A correction that repeats the answer confirms it: the bound and the table agree on it.
    control_all = res["metrics"]["control"]["all"]
    assert control_all["corrections"] == 4 and control_all["correction_rate"] == pytest.approx(0.4)
    assert control_all["known_wrong"] == 3
    assert control_all["accuracy_bound"] == pytest.approx(table["accuracy"]) == pytest.approx(0.7)
    # The slice carries the same counts (all traffic is one slice) and the slice's offline shares.
    assert control["slices"][SLICE]["confusion"]["counts"] == table["counts"]

    for arm, answers in (("control", CONTROL), ("treatment", TREATMENT)):
        shift = res["label_metrics"][arm]["slices"]["all"]["prediction_shift"]
        want = _expected_shift(answers)
        assert shift["chi_square"] == pytest.approx(want["chi2"], rel=1e-12)
        assert shift["p_value"] == pytest.approx(want["p"], rel=1e-9)
        assert shift["dof"] == want["dof"] == 2
        assert shift["online_n"] == len(answers) and shift["offline_n"] == OFFLINE_N
        rows = {r["label"]: r for r in shift["classes"]}
        for i, c in enumerate(CLASSES):
            assert rows[c]["online_count"] == answers.count(c)
            assert rows[c]["difference"] == pytest.approx(want["shares"][i] - OFFLINE_SHARES[c])
            assert rows[c]["residual"] == pytest.approx(want["residuals"][i], rel=1e-9)
            assert rows[c]["p_value_holm"] == pytest.approx(want["holm"][i], rel=1e-9)
            want_ci = confint_proportions_2indep(
                answers.count(c), len(answers), OFFLINE_SHARES[c] * OFFLINE_N, OFFLINE_N,
                method="newcomb")
            assert rows[c]["difference_ci"] == pytest.approx(list(want_ci), rel=1e-9)
    # Against the offline answers, by the same test.
    answers = res["label_metrics"]["treatment"]["slices"]["all"]["answer_shift"]
    table = np.vstack([np.array([OFFLINE_ANSWERS[c] for c in CLASSES]) * OFFLINE_N,
                       [TREATMENT.count(c) for c in CLASSES]])
    assert answers["chi_square"] == pytest.approx(
        stats.chi2_contingency(table, correction=False).statistic, rel=1e-12)
    assert control["slices"][SLICE]["answer_shift"] is None  # the slice row kept no answers
    treatment = res["label_metrics"]["treatment"]["slices"]["all"]["prediction_shift"]
    assert treatment["shifted"]
    want = _expected_shift(TREATMENT)
    assert [r["label"] for r in treatment["classes"] if r["shifted"]] == [
        c for i, c in enumerate(CLASSES) if want["holm"][i] < 0.05]
    assert [r["shifted"] for r in treatment["classes"]][0]
    control_shift = res["label_metrics"]["control"]["slices"]["all"]["prediction_shift"]
    assert not control_shift["shifted"]


def test_divergence_has_confusion_and_per_class_shift_findings(db: Database) -> None:
    exp = load_label_experiment(db)
    with db.session() as s:
        report = divergence_report(s, exp)
    by_cand = {m["candidate"]: m for m in report["label_metrics"]}
    assert by_cand["cand-a"]["confusion"]["all"]["counts"] == [[3, 1, 1], [1, 2, 0], [0, 0, 2]]
    assert by_cand["cand-b"]["confusion"]["all"]["counts"] == [[32, 4, 0], [0, 3, 0],
                                                               [0, 0, 1]]
    shift = next(s for s in report["prediction_shift"] if s["candidate"] == "cand-b")
    off = shift["offline_labels"]
    want = _expected_shift(TREATMENT)
    assert off["chi_square"] == pytest.approx(want["chi2"], rel=1e-12)
    assert off["top_label"] == "a" and off["excess"] == pytest.approx(36 / 40 - 0.5)
    # Only the over-predicted class is a finding (b and c are its other side).
    found = [f for f in report["findings"] if f["kind"] == "prediction_shift"
             and f["candidate"] == "cand-b" and "offline labels" in f["explanation"]]
    assert [f["label"] for f in found] == ["a"]
    assert found[0]["severity"] == pytest.approx(0.4)
    assert found[0]["p_value"] == pytest.approx(want["holm"][0], rel=1e-9)
    assert [f["rank"] for f in report["findings"]] == list(range(1, len(report["findings"]) + 1))


def test_a_relabel_of_an_uncorrected_answer_counts_at_its_label(db: Database) -> None:
    exp = load_label_experiment(db)
    with db.session() as s:  # c2 answered a; no one corrected it; an annotator says c
        s.add(RelabelItem(prediction_id="c2", status="done", label="c", created_at=T0,
                          labeled_at=T0))
        # c0 answered a, its customer said b, an annotator says a: the verified label is the
        # truth (it replaces the correction's, never counts twice)
        s.add(RelabelItem(prediction_id="c0", status="done", label="a", created_at=T0,
                          labeled_at=T0))
    with db.session() as s:
        table = experiment_results(s, exp)["label_metrics"]["control"]["slices"]["all"][
            "confusion"]
    assert table["with_truth"] == [[1, 0, 2], [1, 0, 0], [0, 0, 1]]
    assert table["counts"] == [[3, 0, 2], [1, 2, 0], [0, 0, 2]]
    assert table["truths"] == 5 and table["accuracy"] == pytest.approx(0.7)


def _cell(outputs: dict[str, int], pairs: dict[tuple[str, str], int]) -> Cell:
    cell = Cell()
    for label, n in outputs.items():
        cell.add(agg.OUTPUT, label, (n, n, n))
    for (answer, truth), n in pairs.items():
        label = agg.confusion_label(answer, truth)
        assert label is not None
        cell.add(agg.CONFUSION, label, (n, n, n))
        cell.add(agg.CORRECTED, "", (n, n, n))
    return cell


def test_a_shadow_counts_only_predictions_with_a_truth() -> None:
    table = confusion(_cell({"a": 5, "b": 1}, {("a", "b"): 2, ("b", "b"): 1}), ["a", "b"],
                      shadow=True)
    assert table["counts"] == table["with_truth"] == [[0, 2], [0, 1]]
    assert table["uncorrected"] is None and table["accuracy"] is None
    assert table["accuracy_with_truth"] == pytest.approx(1 / 3)


def test_classes_outside_the_declared_list_are_appended_and_overlong_pairs_counted() -> None:
    # Two classes of the longest name fit as a pair; a pair JSON's escapes make too long keeps
    # its answer, with a truth the table cannot place.
    assert json.loads(agg.confusion_label("x" * 100, "y" * 100)) == ["x" * 100, "y" * 100]
    assert json.loads(agg.confusion_label('"' * 100, "\\" * 100)) == ['"' * 100, None]
    assert agg.confusion_label("", "a") is None  # a failed prediction answered nothing
    cell = _cell({"a": 2, "z": 1}, {("z", "a"): 1})
    cell.add(agg.CORRECTED, "", (1, 1, 1))  # a truth the table cannot place
    table = confusion(cell, ["b", "a"])
    assert table["classes"] == ["b", "a", "z"]
    assert table["counts"] == [[0, 0, 0], [0, 2, 0], [0, 1, 0]]
    assert table["truths_outside_table"] == 1


def test_classes_of_the_longest_names_are_counted_on_both_stores(db: Database) -> None:
    """A class name may be 100 characters (and hold quotes, which JSON escapes): the worker
    keeps every answer and correction (PostgreSQL once parked them all, the label column being
    too narrow), and an answer whose pair cannot be placed is not counted as uncorrected."""
    a, b, q = "a" * 100, "b" * 100, '"' * 100
    classes = [a, b, q]
    add_label_candidate(db, "cand-a", classes)
    add_label_candidate(db, "cand-b", classes)
    exp = add_experiment(db)
    answers = [a] * 6 + [q] * 4
    apply(db, [label_prediction(f"c{i}", v, "control", "cand-a") for i, v in enumerate(answers)]
          + [label_prediction("t0", a, "treatment", "cand-b")])
    # a -> b twice, a -> a once (confirms); q -> b twice: a pair too long for the column.
    truths = {0: b, 1: b, 2: a, 6: b, 7: b}
    apply(db, [label_correction(f"c{i}", t) for i, t in truths.items()])
    with db.session() as s:
        assert s.query(ParkedEvent).count() == 0
        res = experiment_results(s, exp)
    table = res["label_metrics"]["control"]["slices"]["all"]["confusion"]
    assert table["classes"] == classes
    assert table["with_truth"] == [[1, 2, 0], [0, 0, 0], [0, 0, 0]]
    assert table["uncorrected"] == {a: 3, b: 0, q: 2}
    assert table["truths_outside_table"] == 2
    # Right: the confirmed a, the 3 uncorrected a's, the 2 uncorrected q's, of the 8 placed.
    assert table["accuracy"] == pytest.approx(6 / 8)
    assert res["metrics"]["control"]["all"]["accuracy_bound"] == pytest.approx(6 / 10)


def test_the_answer_shift_counts_only_the_examples_answered_offline() -> None:
    """An offline test whose candidate failed on 80 of 100 examples kept the shares of its 20
    answers: they weigh as 20 counts, not 100 (which made a shift of chance significant)."""
    offline = {"n": 100, "failed": 80, "label_shares": {"a": 0.5, "b": 0.5},
               "output_shares": {"a": 0.5, "b": 0.5}}
    block = label_block(_cell({"a": 70, "b": 30}, {}), ["a", "b"], offline, 0.05)
    answers, labels = block["answer_shift"], block["prediction_shift"]
    assert answers["offline_n"] == 20 and labels["offline_n"] == 100
    want = stats.chi2_contingency(np.array([[10, 10], [70, 30]]), correction=False)
    assert answers["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
    assert answers["p_value"] > 0.05 > labels["p_value"]


def test_shift_without_offline_n_or_shares() -> None:
    assert prediction_shift({"a": 3}, {}, 100) is None
    assert prediction_shift({}, {"a": 1.0}, 100) is None
    shift = prediction_shift({"a": 3, "b": 1}, {"a": 0.5, "b": 0.5}, None)
    assert shift is not None and shift["chi_square"] is None
    assert "no n" in shift["error"]
    assert [r["difference"] for r in shift["classes"]] == [0.25, -0.25]


def _untyped_cell(rows: list[tuple[str, str | None]]) -> Cell:
    """A cell as the worker counts v1 (untyped) predictions and their truths."""
    acc = agg.Accumulator()
    for i, (answer, truth) in enumerate(rows):
        p = agg.PredictionFacts.of(prediction_id=str(i), experiment_id=1, arm="a",
                                   candidate="c", shadow=False, slice_="all", created_at=T0,
                                   output=answer, unit_id=f"u{i}")
        acc.add_prediction(p)
        if truth is not None:
            acc.add_truth(p, truth)
    cell = Cell()
    for r in acc.rows():
        cell.add(r["metric"], r["label"], [r["n"], r["sum"], r["sum_squares"]])
    return cell


def test_an_undeclared_label_candidates_table_follows_its_exact_match() -> None:
    """A v1 candidate with offline label shares gets a table; its answers were counted untyped
    (LaTeX tokens, spacing ignored), so "New York" corrected to "NewYork" is right in its
    exact match and must be on the table's diagonal too, not a confusion."""
    cell = _untyped_cell([("New York", "NewYork"), ("a b", "ab"), ("x", "x"), ("x", "y"),
                          ("x", None)])
    facts = CandidateFacts(OutputKind("latex"), False, {"label_shares": {"x": 1.0}})
    assert facts.is_label and facts.compared_as is None
    table = confusion(cell, compared_as=facts.compared_as)
    figures = metrics(cell, output_type=facts.output_type)
    assert figures["exact_match"] == table["accuracy_with_truth"] == 0.75
    assert figures["accuracy_bound"] == table["accuracy"] == 0.8
    assert table["classes"] == ["New York", "a b", "x", "y"]
    # A declared label candidate compares whole values, the table as before.
    assert CandidateFacts(OutputKind("label", ("x",)), True).compared_as == "label"
    assert confusion(cell)["accuracy_with_truth"] == 0.25


def test_an_undeclared_label_candidates_table_agrees_in_results_and_divergence(
        db: Database) -> None:
    for name in ("cand-a", "cand-b"):  # registered by hand: no declared output type
        add_candidate(db, name, {"overall": {"n": 100}, "label_shares": {"New York": 1.0}})
    exp = add_experiment(db)
    answers = {"p0": ("New York", "NewYork"), "p1": ("New York", "Boston"),
               "p2": ("New York", None)}
    apply(db, [prediction(pid, output=answer) for pid, (answer, _) in answers.items()]
          + [correction(pid, truth) for pid, (_, truth) in answers.items() if truth])
    with db.session() as s:
        res = experiment_results(s, exp)
        report = divergence_report(s, exp)
    table = res["label_metrics"]["control"]["slices"]["all"]["confusion"]
    figures = res["metrics"]["control"]["all"]
    assert figures["exact_match"] == table["accuracy_with_truth"] == 0.5
    assert figures["accuracy_bound"] == pytest.approx(table["accuracy"]) == pytest.approx(2 / 3)
    assert report["label_metrics"][0]["confusion"]["all"]["counts"] == table["counts"]
    assert table["classes"] == ["Boston", "New York"]
