"""Accuracy from verified labels in the results: the audit figure with its Wilson interval, a
shadow scored on its served twin's label, all labels apart (biased), and labels never counted
as customer corrections in the correction rate and its bound."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from core.store.db import Database
from core.store.models import RelabelItem
from evaluation.results import experiment_results
from tests.evaluation.helpers import T0, add_experiment, apply, correction, prediction


def label(db: Database, pid: str, value: str, reasons: list[str], exp: int) -> None:
    with db.session() as s:
        s.add(RelabelItem(queue=reasons[0], prediction_id=pid, input_hash=pid[:16], label=value,
                          status="done", reasons=reasons, experiment_id=exp, created_at=T0,
                          labeled_at=T0))


def test_audit_accuracy_shadow_accuracy_and_the_bound(db: Database) -> None:
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    batch = []
    for i in range(10):
        batch.append(prediction(f"p{i:02d}", experiment_id=exp, output="x", unit_id=f"u{i}"))
        shadow = prediction(f"p{i:02d}-s", experiment_id=exp, arm=None, candidate="cand-s",
                            shadow=True, output="x" if i < 5 else "y", unit_id=f"u{i}")
        shadow["input_hash"] = f"p{i:02d}"[:16]
        batch.append(shadow)
    apply(db, [*batch, correction("p00", "z")])
    # Audit labels: p01..p05 (p01 wrong); a correction verified: p00 -> z
    for i, truth in zip(range(1, 6), ["w", "x", "x", "x", "x"], strict=True):
        label(db, f"p{i:02d}", truth, ["audit"], exp)
    label(db, "p00", "z", ["correction"], exp)
    with db.session() as s:
        results = experiment_results(s, exp)
    control = results["metrics"]["control"]["all"]
    assert control["corrections"] == 1  # the labels are not customer corrections
    # ... but a label that shows an answer wrong is known: p00 (corrected) and p01 (audited)
    assert control["known_wrong"] == 2 and control["accuracy_bound"] == pytest.approx(0.8)
    fig = results["online_accuracy"]["variants"]["control"]["slices"]["all"]
    assert (fig["audit"]["n"], fig["audit"]["correct"]) == (5, 4)
    low, high = proportion_confint(4, 5, method="wilson")
    assert fig["audit"]["ci"] == pytest.approx([low, high])
    assert (fig["labeled"]["n"], fig["labeled"]["correct"]) == (6, 4)
    assert "biased low" in fig["labeled"]["bias"] and fig["correction_bound"]["accuracy"] == \
        pytest.approx(0.8)
    shadow = results["online_accuracy"]["variants"]["shadow:cand-s"]["slices"]["all"]["audit"]
    # The shadow answered x on p01..p04 and y on p05, against w, x, x, x, x
    assert (shadow["n"], shadow["correct"]) == (5, 3)
    assert "served twin" in shadow["sample"]
