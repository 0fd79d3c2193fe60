"""The store's text form of typed values and back: a json value is always canonical JSON (a
string quoted, integral floats as integers at any depth), label/text/LaTeX strings as they are,
numbers as today; the reverse reads rows stored before json strings were quoted. Long text
corrections have the answers' limit."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import AbvocError
from core.events import (
    CORRECTION_SUBMITTED,
    PREDICTION_MADE,
    canonical_json,
    corrected_text,
    make_event,
    output_text,
    typed_value,
    value_text,
)
from core.output_types import MAX_JSON_CHARS, MAX_OUTPUT_CHARS, OutputKind, check_output


@pytest.mark.parametrize(("value", "output_type", "text"), [
    ("big", "json", '"big"'),
    ("123", "json", '"123"'),
    (123, "json", "123"),
    (2.0, "json", "2"),
    (2.5, "json", "2.5"),
    ({"score": 2.0, "kind": "a"}, "json", '{"kind":"a","score":2}'),
    ([1.0, {"x": [3.0, -0.0]}], "json", '[1,{"x":[3,0]}]'),
    (True, "json", "true"),
    (None, "json", "null"),
    ("big", "label", "big"),
    ("a cat", "text", "a cat"),
    ("x^{2}", "latex", "x^{2}"),
    ("x^{2}", None, "x^{2}"),
    (16.0, "number", "16.0"),
    (16.093, "number", "16.093"),
])
def test_the_stored_text_depends_on_the_type(value: Any, output_type: str | None,
                                             text: str) -> None:
    assert value_text(value, output_type) == text
    back = typed_value(text, output_type)
    assert back == value and type(back) is type(value) or output_type == "json"


def test_json_values_read_back_as_their_type() -> None:
    for value in ("big", "123", 123, 2.5, {"kind": "a", "score": 2}, [1, "2"], None, False):
        assert typed_value(value_text(value, "json"), "json") == value
        assert type(typed_value(value_text(value, "json"), "json")) is type(value)


def test_rows_of_the_old_form_still_read() -> None:
    assert typed_value("big", "json") == "big"  # stored unquoted before: the string itself
    assert typed_value("{not json", "json") == "{not json"
    assert typed_value('{"a":1}', "json") == {"a": 1}
    assert typed_value("3.5", "number") == 3.5
    assert typed_value("null", "number") is None  # a failed number answer
    assert typed_value("x^{2}", "latex") == "x^{2}" and typed_value("7", "label") == "7"
    with pytest.raises(AbvocError, match="is not a number"):
        typed_value("seven", "number")


def test_equal_json_values_have_one_text() -> None:
    assert canonical_json({"kind": "a", "score": 2}) == canonical_json({"score": 2.0,
                                                                        "kind": "a"})
    # Untyped callers (a label's value) still get canonical objects and arrays.
    assert value_text({"kind": "a", "score": 2.0}) == value_text({"kind": "a", "score": 2})
    assert canonical_json(1e300) == "1e+300"  # a huge float is not written digit by digit
    assert canonical_json(2.0**53) == str(2**53)


def test_a_truth_equal_to_the_answer_compares_equal() -> None:
    for output_type, answer, truth in [("json", "big", "big"), ("json", {"s": 2.0}, {"s": 2}),
                                       ("number", 3.0, 3), ("latex", "x", "x"),
                                       ("label", "cat", "cat")]:
        prediction = make_event(PREDICTION_MADE, prediction_id="p", candidate="c",
                                input_hash="h", output=answer, output_type=output_type)
        correction = make_event(CORRECTION_SUBMITTED, correction_id="c", prediction_id="p",
                                corrected_output=truth, output_type=output_type)
        assert output_text(prediction) == corrected_text(correction), output_type
    string = make_event(PREDICTION_MADE, prediction_id="p", candidate="c", input_hash="h",
                        output="big", output_type="json")
    assert output_text(string) == '"big"'


@pytest.mark.parametrize("output_type", ["text", "latex"])
def test_text_corrections_have_the_answers_limit(output_type: str) -> None:
    assert MAX_JSON_CHARS == MAX_OUTPUT_CHARS == 10_000
    kind = OutputKind(output_type)
    long = "x" * 3004
    assert check_output(kind, long) == long
    assert check_output(kind, "x" * MAX_OUTPUT_CHARS) == "x" * MAX_OUTPUT_CHARS
    with pytest.raises(AbvocError, match="the limit is 10000"):
        check_output(kind, "x" * (MAX_OUTPUT_CHARS + 1))
