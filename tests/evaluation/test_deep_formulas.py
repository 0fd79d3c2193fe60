"""Formulas nested deeper than anyone writes: refused at intake (a correction's or a label's),
and where one is stored anyway (a candidate's answer, a label or bus event from before the
limit) judged as blaming nobody, never raising: a RecursionError in the structure comparison
parked the correction, the prediction it met, and made every divergence read a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.latex import MAX_NESTING, validate_latex
from core.store.db import Database
from core.store.models import ParkedEvent, Prediction, PredictionTruth
from evaluation.attribution import canonical, render
from evaluation.divergence import divergence_with_stages
from evaluation.stage_blame import NOBODY, verdict
from tests.evaluation.helpers import add_experiment, apply, correction, prediction
from tests.evaluation.test_stored_blame import _ocr
from tests.evaluation.test_truth_rules import _label


def _nested(depth: int) -> str:
    return "x^{" * depth + "y" + "}" * depth


def test_braces_nested_past_the_limit_are_refused_at_intake() -> None:
    assert validate_latex(_nested(MAX_NESTING)) == []
    assert validate_latex(_nested(MAX_NESTING + 1)) == [
        f"braces nested more than {MAX_NESTING} deep at token {3 * MAX_NESTING + 3}"]
    assert validate_latex("{" * 5000 + "}" * 5000) == [
        f"braces nested more than {MAX_NESTING} deep at token {MAX_NESTING + 1}"]


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 5000])
def test_a_formula_too_deep_to_compare_blames_nobody(depth: int) -> None:
    with pytest.raises(ValueError, match="nested more than"):
        canonical(_nested(depth))
    stages = _ocr(["x", "y"])
    assert verdict(_nested(depth), stages, "x^{y}", None) == (NOBODY, None)  # the answer
    assert verdict("x^{y}", stages, _nested(depth), None) == (NOBODY, None)  # the truth
    # The right symbols (a row of x), which the aligner's relations nest as a tower.
    chain = {**_ocr(["x"] * (depth + 1)), "aligner": {"relations": [[-1, "start", 1.0]] + [
        [i, "sup", 1.0] for i in range(depth)]}}
    with pytest.raises(ValueError, match="nested more than"):
        render(chain["recognizer"]["classes"], chain["aligner"]["relations"])
    assert verdict("x", chain, "x" * (depth + 1), None) == (NOBODY, None)


def test_the_stream_and_the_report_go_on_past_a_deep_formula(db: Database) -> None:
    """A correction event from before the limit (the bus carries what the API accepted then),
    applied before its prediction; then an annotator's label stored before the limit."""
    add_experiment(db)
    apply(db, [correction("deep", _nested(1000))])
    apply(db, [prediction("deep", candidate="ocr", output="xy", stages=_ocr(["x", "y"])),
               prediction("deep-answer", candidate="ocr", output=_nested(900),
                          stages=_ocr(["x", "y"])), correction("deep-answer", "x^{y}")])
    with db.reading() as s:
        assert not s.scalars(select(ParkedEvent)).all()
        assert set(s.scalars(select(Prediction.prediction_id))) == {"deep", "deep-answer"}
        assert dict(s.execute(select(PredictionTruth.prediction_id, PredictionTruth.blame))
                    .all()) == {"deep": NOBODY, "deep-answer": NOBODY}
    _label(db, "deep-answer", _nested(2000))  # stored before labels were checked for depth
    with db.reading() as s:
        report = divergence_with_stages(s, 1)
    assert report["stage_attribution"]
