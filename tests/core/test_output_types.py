"""The output-type check of corrections and the event forms they travel in."""

from __future__ import annotations

import json
import math

import pytest

from core import events
from core.errors import AbvocError
from core.output_types import OutputKind, check_output


def test_a_pipeline_without_an_output_type_is_latex() -> None:
    assert OutputKind.of_pipeline({"detector": {}}).type == "latex"
    assert OutputKind.of_pipeline(None).type == "latex"
    assert OutputKind.of_pipeline({"output": {"type": "label", "classes": ["a"]}}) \
        == OutputKind("label", ("a",))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, False, "1", [1], None])
def test_numbers_must_be_finite_json_numbers(value: object) -> None:
    with pytest.raises(AbvocError, match="finite JSON number"):
        check_output(OutputKind("number"), value)
    assert check_output(OutputKind("number"), 2) == 2.0


@pytest.mark.parametrize("value", [2.0**53 + 2, -1e20, 1e300, 10**400])
def test_a_number_label_past_2_53_is_refused(value: object) -> None:
    """An answer or label of 1e300 (a Label Studio import took it) overflowed the error
    sums' squares and broke the experiment's results for good: the API's own bound holds."""
    with pytest.raises(AbvocError, match="at most 2\\^53"):
        check_output(OutputKind("number"), value)
    assert check_output(OutputKind("number"), -(2**53)) == -(2.0**53)


def test_a_label_outside_the_classes_names_them_as_typed() -> None:
    """The classes were printed as a Python list, brackets and all, and repr wrote a class
    with an apostrophe in double quotes and a backslash doubled: as typed, quoted, comma-
    separated, as query names and unknown fields are."""
    kind = OutputKind("label", ("hello", "héllo", "it's", "a\\b"))
    with pytest.raises(AbvocError) as refused:
        check_output(kind, "nope")
    assert refused.value.message.endswith(
        "is not one of the candidate's classes 'hello', 'héllo', 'it's', 'a\\b'")


def test_json_without_a_schema_only_has_a_size_limit() -> None:
    assert check_output(OutputKind("json"), {"a": [1]}) == {"a": [1]}
    with pytest.raises(AbvocError, match="longer than"):
        check_output(OutputKind("json"), ["x" * 100] * 200)


def test_corrected_text_compares_like_the_prediction_output() -> None:
    number = events.make_event(events.CORRECTION_SUBMITTED, correction_id="c", prediction_id="p",
                               corrected_output=3, output_type="number")
    assert number["schema_version"] == 3 and events.corrected_text(number) == "3.0"
    document = {**number, "corrected_output": {"b": 1, "a": [2]}, "output_type": "json"}
    assert events.corrected_text(document) == '{"a":[2],"b":1}'
    old = {**number, "schema_version": 2, "corrected_output": "x^{2}"}
    del old["output_type"]
    assert events.decode(json.dumps(old).encode()) == old  # v2 is still read
    assert events.corrected_text(old) == "x^{2}"
