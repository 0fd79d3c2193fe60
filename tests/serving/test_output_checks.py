"""An answer that is not a valid value of its output type is the candidate's failure (a 502 that
names the problem), never served: NaN class scores, a JSON answer holding NaN or a non-JSON
value, a text answer that is not a string (or holds NUL), a number out of float range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.output_types import OutputKind
from serving.bundles import BundleRunner
from serving.outputs import CandidateOutputError, read_answer
from serving.servable import BundleCandidate

LABEL = OutputKind("label", ("a", "b", "c"))
TEXT = OutputKind("text")
JSON = OutputKind("json")
NUMBER = OutputKind("number")


def _obj(*values: object) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _refused(kind: OutputKind, outputs: dict, words: str) -> CandidateOutputError:
    with pytest.raises(CandidateOutputError, match=words) as info:
        read_answer(kind, outputs)
    assert info.value.status == 502
    assert info.value.repeats  # the same input fails again: the caller is not told to retry
    return info.value


@pytest.mark.parametrize("scores", [[np.nan, 0.5, 0.5], [0.2, np.nan, 0.1], [np.inf, 1.0, 2.0],
                                    [-np.inf, -np.inf, -np.inf]])
def test_class_scores_that_are_not_finite_are_refused(scores: list[float]) -> None:
    _refused(LABEL, {"probabilities": np.array([scores], np.float32)}, "scores are not finite")


def test_a_class_the_scores_rule_out_is_minus_infinity() -> None:
    """Log-probabilities give -inf to a class that cannot be; the top score is still finite."""
    logits = np.array([[-np.inf, 1.0, 2.0]], np.float32)
    assert read_answer(LABEL, {"logits": logits}) == ("c", None)


@pytest.mark.parametrize("outputs", [
    {"output": _obj('{"sum": NaN, "n": 2}')},
    {"output": _obj(b'{"sum": -Infinity}')},
    {"json": _obj("[1, 1e400]")},
    {"a": np.array([np.nan]), "b": np.array([1.0])},
    {"a": _obj(float("inf")), "b": np.array([1.0])},
])
def test_a_json_answer_holding_a_number_that_is_not_finite_is_refused(outputs: dict) -> None:
    _refused(JSON, outputs, "JSON answer holds a number that is not finite")


def test_the_refusal_says_where_the_number_is() -> None:
    error = _refused(JSON, {"output": _obj('{"n": 2, "sum": [1, NaN]}')}, "not finite")
    assert "/sum/1" in error.message


@pytest.mark.parametrize(("outputs", "got"), [
    ({"output": np.array([1 + 2j])}, "complex"),
    ({"a": _obj(object()), "b": np.array([1.0])}, "object"),
    ({"a": _obj({"k": {1, 2}}), "b": np.array([1.0])}, "set"),
    ({"a": _obj(10**400), "b": np.array([1.0])}, "out of float range"),
])
def test_a_json_answer_must_hold_json_values(outputs: dict, got: str) -> None:
    error = _refused(JSON, outputs, "JSON answer must hold JSON values")
    assert got in error.message


@pytest.mark.parametrize(("value", "got"), [
    (None, "NoneType"), ({"k": 1}, "dict"), (2.5, "float")])
def test_json_text_must_be_a_string(value: object, got: str) -> None:
    _refused(JSON, {"output": _obj(value)}, f"must be a str or bytes.*got a value of type {got}")


def test_json_values_in_object_arrays_are_kept_as_json() -> None:
    value, _ = read_answer(JSON, {"a": _obj(None, 2, b"x", {"k": [True]}), "b": np.array([1.5])})
    assert value == {"a": [None, 2, "x", {"k": [True]}], "b": [1.5]}


def test_json_text_nested_past_the_parser_is_refused() -> None:
    _refused(JSON, {"output": _obj("[" * 4000 + "]" * 4000)}, "nested")


@pytest.mark.parametrize("kind", [TEXT, OutputKind("latex")])
@pytest.mark.parametrize(("outputs", "got"), [
    ({"output": np.asarray(None)}, "NoneType"),
    ({"output": _obj(None)}, "NoneType"),
    ({"output": _obj({"a": 1})}, "dict"),
    ({"output": np.asarray(object())}, "object"),
    ({"output": _obj(10**400)}, "int"),
    ({"text": _obj(2.5)}, "float"),
])
def test_a_text_answer_must_be_a_string(kind: OutputKind, outputs: dict, got: str) -> None:
    _refused(kind, outputs, rf"must be a str or bytes \(UTF-8\) value; got a value of type {got}\b")


@pytest.mark.parametrize(("value", "words"), [
    ("nul\x00inside", r"NUL \(\\u0000\)"),
    ("\ud800", "surrogate"),
    (b"\xff\xfe", "not valid UTF-8"),
])
def test_a_text_answer_that_cannot_be_stored_is_refused(value: object, words: str) -> None:
    _refused(TEXT, {"output": _obj(value)}, words)


@pytest.mark.parametrize("output", [_obj("héllo"), _obj("héllo".encode()), np.array(["héllo"]),
                                    np.array(["héllo".encode()]), np.asarray("héllo")])
def test_strings_and_utf8_bytes_are_text(output: np.ndarray) -> None:
    value, _ = read_answer(TEXT, {"output": output})
    assert value == "héllo" and type(value) is str


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_a_number_out_of_float_range_is_refused(value: int) -> None:
    _refused(NUMBER, {"output": _obj(value)}, "answered a number out of float range")


# --- through a bundle of one Python stage, as /v2 serves it ---------------------------------------

FREE_JSON = 'type = "json"\nschema = {type = "object"}\n'
BAD = [  # (output section of the manifest, the stage's answer, what the 502 says)
    ('type = "label"\nclasses = ["a", "b", "c"]\n',
     "{'probabilities': np.array([[float('nan'), 0.5, 0.5]], np.float32)}", "not finite"),
    (FREE_JSON, "{'output': boxed('{\"sum\": NaN, \"n\": 2}')}", "not finite"),
    (FREE_JSON, "{'output': np.array([1 + 2j])}", "must hold JSON values"),
    ('type = "text"\n', "None", "of type NoneType"),
    ('type = "text"\n', "object()", "of type object"),
    ('type = "text"\n', "{'output': boxed('nul\\x00inside')}", "NUL"),
    ('type = "number"\n', "{'output': boxed(10**400)}", "out of float range"),
]


def _bundle(tmp_path: Path, output: str, answer: str) -> Path:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "stage.py").write_text(
        "import numpy as np\n\n\ndef boxed(value):\n    out = np.empty(1, dtype=object)\n"
        f"    out[0] = value\n    return out\n\n\ndef run(tensors):\n    return {answer}\n")
    (folder / "candidate.toml").write_text(
        'name = "odd"\nversion = "1"\nbackend = "onnxruntime"\n[[inputs]]\nname = "x"\n'
        f'datatype = "FP32"\nshape = [-1, 2]\n[output]\n{output}[[stages]]\nname = "run"\n'
        'kind = "python"\ncallable = "stage:run"\n')
    return folder


@pytest.mark.parametrize(("output", "answer", "words"), BAD, ids=[json.dumps(b[1]) for b in BAD])
def test_a_bundle_that_answers_so_is_a_502(tmp_path: Path, output: str, answer: str,
                                           words: str) -> None:
    with BundleRunner.open(_bundle(tmp_path, output, answer)) as runner, \
            pytest.raises(CandidateOutputError, match=words) as info:
        BundleCandidate(runner).predict({"x": np.array([[1, 2]], np.float32)})
    assert info.value.status == 502


@pytest.mark.parametrize("scores", [[np.nan, 0.5, 0.5], [np.inf, 0.0, 0.0]])
def test_a_label_beside_scores_that_are_not_finite_is_refused(scores: list[float]) -> None:
    """A stage that picks its label from NaN scores answers a label all the same: refused as
    the scores alone are, not served with the scores written as null."""
    _refused(LABEL, {"label": _obj("a"), "probabilities": np.array([scores], np.float32)},
             "output tensor 'probabilities' holds NaN or \\+Infinity")


def test_a_label_beside_log_probabilities_is_served() -> None:
    logits = np.array([[0.0, -np.inf, -np.inf]], np.float32)
    assert read_answer(LABEL, {"label": _obj("a"), "logits": logits}) == ("a", None)
