"""A shadow disagrees with the served answer as the answers' type judges them: a regression's
shadow that differed in the last digits filled the training queue with every request, and text
that differed only in its spacing counted as a disagreement. Numbers within the rules'
`shadow_number_tolerance` agree."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core import events
from core.errors import AbvocError
from core.store.db import Database
from core.store.models import RelabelItem
from evaluation.token_metrics import answers_differ
from feedback import relabel_rules
from tests.evaluation.helpers import add_experiment, apply, prediction

NOTHING = {"audit_rate": 0.0, "low_confidence_below": None, "divergent_slice_rate": 0.0,
           "second_annotator_share": 0.0}


def pair(exp: int, name: str, served: Any, shadow: Any, kind: str) -> list[dict[str, Any]]:
    """A served answer and its shadow's, to one request."""
    out = []
    for pid, value, is_shadow in ((name, served, False), (f"{name}-shadow", shadow, True)):
        event = prediction(pid, experiment_id=exp, unit_id=f"u-{name}", confidence=None,
                           arm=None if is_shadow else "control",
                           candidate="cand-s" if is_shadow else "cand-a", shadow=is_shadow)
        event.update(output=value, output_type=kind, input_hash=f"h-{name}")
        out.append(events.validate_event(event))
    return out


CASES = [  # name, served, shadow, type, disagree (with a tolerance of 1 %)
    ("close", 100.0, 100.4, "number", False),
    ("far", 100.0, 103.0, "number", True),
    ("near-zero", 0.001, 0.004, "number", False),
    ("whole", 3, 3.0, "number", False),
    ("spacing", "the cat  sat", "the cat sat", "text", False),
    ("word", "the cat sat", "the dog sat", "text", True),
    ("latex", "x^{2}", "x ^ { 2 }", "latex", False),
]


def test_shadow_disagreements_follow_the_type(db: Database) -> None:
    exp = add_experiment(db, shadows=[{"candidate": "cand-s"}])
    relabel_rules.put(db, {**NOTHING, "shadow_number_tolerance": 0.01})
    for name, served, shadow, kind, _ in CASES:
        apply(db, pair(exp, name, served, shadow, kind))
    with db.session() as s:
        queued = {i.prediction_id: i.reasons for i in s.scalars(select(RelabelItem))}
    assert queued == {name: ["shadow_disagreement"] for name, *_, differ in CASES if differ}


def test_without_a_tolerance_any_other_number_disagrees() -> None:
    assert answers_differ("100.0", "100.0000001", "number")
    assert not answers_differ("3", "3.0", "number")
    assert answers_differ("", "3.0", "number")  # a failed answer
    assert not answers_differ("100.0", "100.0000001", "number", number_tolerance=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "1%", True])
def test_the_tolerance_is_a_share(db: Database, bad: Any) -> None:
    with pytest.raises(AbvocError, match="shadow_number_tolerance"):
        relabel_rules.put(db, {"shadow_number_tolerance": bad})
