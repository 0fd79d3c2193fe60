"""The generic blame rule for bundles whose stages declare answers: the first stage already
wrong is blamed, compared as the online metrics compare answers of each type; numbers blame the
stage that added the most error; what cannot be read blames nobody."""

from __future__ import annotations

import pytest

from core.events import value_text
from core.output_types import STAGE_ANSWERS
from evaluation.stage_blame import NOBODY, stage_answers, verdict


def blame(output: str, stages: dict, truth: str, output_type: str | None) -> str | None:
    """The stage a truth blames, as the worker stores it (None: nobody)."""
    stage, _ = verdict(output, stages, truth, output_type)
    return None if stage == NOBODY else stage


def staged(*pairs: tuple[str, str]) -> dict:
    return {STAGE_ANSWERS: [{"stage": s, "answer": a} for s, a in pairs]}


@pytest.mark.parametrize(("answers", "output", "truth", "expected"), [
    # the classifier was right and the post stage turned it wrong: the post stage
    ((("classifier", "virginica"), ("to_label", "versicolor")), "versicolor", "virginica",
     "to_label"),
    # the classifier was already wrong: the classifier, whatever came after
    ((("classifier", "setosa"), ("to_label", "versicolor")), "versicolor", "virginica",
     "classifier"),
    ((("classifier", "setosa"), ("to_label", "setosa")), "setosa", "virginica", "classifier"),
    # a right output is right, whatever a stage on the way said
    ((("classifier", "setosa"), ("to_label", "virginica")), "virginica", "virginica", "correct"),
    # three stages: the first wrong one of them
    ((("a", "x"), ("b", "y"), ("c", "y")), "y", "x", "b"),
])
def test_labels_blame_the_first_stage_already_wrong(answers: tuple, output: str, truth: str,
                                                    expected: str) -> None:
    assert blame(output, staged(*answers), truth, "label") == expected


def test_text_and_latex_compare_as_the_metrics_do() -> None:
    # spacing never counts: the words (text) and the LaTeX tokens are the same
    assert blame("a  cat", staged(("ocr", "a cat"), ("fix", "a  cat")), "a cat", "text") \
        == "correct"
    assert blame("the dog", staged(("ocr", "a  cat"), ("fix", "the dog")), "a cat", "text") \
        == "fix"
    assert blame("x^{2}", staged(("enc", "x ^ {2}"), ("dec", "x^{2}")), "x^{2}", "latex") \
        == "correct"
    assert blame("x_{2}", staged(("enc", "x ^ {2}"), ("dec", "x_{2}")), "x^{2}", "latex") \
        == "dec"


def test_json_answers_compare_as_canonical_json() -> None:
    truth = value_text({"b": 1, "a": [1, 2]})
    right = value_text({"a": [1, 2], "b": 1})
    wrong = value_text({"a": [1], "b": 1})
    assert blame(wrong, staged(("extract", right), ("shape", wrong)), truth, "json") == "shape"


def test_numbers_blame_the_stage_that_added_the_most_error() -> None:
    # truth 10: the regressor is off by 1, the calibration adds 4 more
    assert blame("15.0", staged(("regressor", "11.0"), ("calibrate", "15.0")), "10.0",
                 "number") == "calibrate"
    # the regressor is off by 6, the calibration takes 1 of it back: the regressor
    assert blame("15.0", staged(("regressor", "16.0"), ("calibrate", "15.0")), "10.0",
                 "number") == "regressor"
    assert blame("10.0", staged(("regressor", "16.0"), ("calibrate", "10.0")), "10.0",
                 "number") == "correct"
    assert blame("x", staged(("regressor", "x"), ("calibrate", "x")), "10.0", "number") is None


@pytest.mark.parametrize("stages", [
    {STAGE_ANSWERS: []},
    {STAGE_ANSWERS: "classifier"},
    {STAGE_ANSWERS: [{"stage": "classifier"}]},
    {STAGE_ANSWERS: [{"stage": 3, "answer": "a"}]},
    {STAGE_ANSWERS: [["classifier", "a"]]},
])
def test_answers_that_cannot_be_read_blame_nobody(stages: dict) -> None:
    assert stage_answers(stages) is None
    # ... and fall to the OCR rules, which find no OCR stages either: no blame for an error
    assert blame("a", stages, "b", "label") is None


def test_predictions_without_answers_keep_the_ocr_rules() -> None:
    ocr = {"detector": {"boxes": [[0, 0, 1, 1]]}, "recognizer": {"classes": ["x"]},
           "aligner": {"relations": [[-1, "right", 1.0]]}}
    assert blame("y", ocr, "x y", None) == "detector"
    assert blame("x", {}, "x", "label") is None  # no stages: not counted, right or wrong
    assert blame("x", None, "y", "label") is None
