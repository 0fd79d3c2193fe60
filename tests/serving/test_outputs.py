"""A candidate's output tensors read as one answer of its output type, or a 502 that says why."""

from __future__ import annotations

import numpy as np
import pytest

from core.output_types import OutputKind
from serving.outputs import CandidateOutputError, read_answer

LABEL = OutputKind("label", ("a", "b", "c"))


def _obj(*values: object) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@pytest.mark.parametrize(("kind", "outputs", "answer", "confidence"), [
    (LABEL, {"label": _obj("b"), "confidence": np.array([0.7], np.float32)}, "b", 0.7),
    (LABEL, {"probabilities": np.array([[0.1, 0.2, 0.7]], np.float32)}, "c", 0.7),
    (LABEL, {"logits": np.array([[3.0, -1.0, 0.5]], np.float32)}, "a", None),
    (LABEL, {"index": np.array([1], np.int64)}, "b", None),
    (OutputKind("text"), {"text": _obj(b"hello")}, "hello", None),
    (OutputKind("latex"), {"scores": np.ones(2), "output": _obj("x^{2}")}, "x^{2}", None),
    (OutputKind("number"), {"price": np.array([[2.5]], np.float64)}, 2.5, None),
    (OutputKind("json"), {"out": _obj('{"k": [1, 2]}')}, {"k": [1, 2]}, None),
    (OutputKind("json"), {"boxes": np.array([[1, 2]]), "names": _obj(b"x")},
     {"boxes": [[1, 2]], "names": ["x"]}, None),
])
def test_each_output_type_is_read(kind: OutputKind, outputs: dict, answer: object,
                                  confidence: float | None) -> None:
    value, conf = read_answer(kind, outputs)
    assert value == answer
    assert conf == (pytest.approx(confidence) if confidence is not None else None)


@pytest.mark.parametrize(("kind", "outputs", "words"), [
    (LABEL, {"label": _obj("z")}, "not one of its classes"),
    (LABEL, {"probabilities": np.ones((1, 4), np.float32)}, "3 class scores"),
    (OutputKind("text"), {"ids": np.array([1, 2])}, "one string"),
    (OutputKind("number"), {"v": np.array([1.0, 2.0])}, "one numeric value"),
    (OutputKind("number"), {"v": np.array([np.nan])}, "finite"),
    (OutputKind("number"), {"v": np.array([6.4e78])}, "at most 2\\^53"),
    (OutputKind("json"), {"out": _obj("{nope")}, "does not parse"),
    (OutputKind("json", schema={"type": "object", "required": ["k"]}), {"out": _obj("{}")},
     "does not match its schema"),
    (OutputKind("text"), {"out": _obj("x" * 10_001)}, "longer than"),
    (LABEL, {}, "no output tensors"),
])
def test_outputs_that_do_not_fit_are_the_candidates_failure(kind: OutputKind, outputs: dict,
                                                           words: str) -> None:
    with pytest.raises(CandidateOutputError, match=words) as info:
        read_answer(kind, outputs)
    assert info.value.status == 502


def test_a_confidence_outside_0_1_is_left_out() -> None:
    _, conf = read_answer(LABEL, {"label": _obj("a"), "confidence": np.array([3.0])})
    assert conf is None
