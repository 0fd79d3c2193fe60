"""A candidate's named output tensors read as one answer of its declared output type.

The answer is what a prediction event records and what a correction is held against: a class
name for `label`, a string for `text`/`latex`, a float for `number`, a JSON value for `json`.
Where it is read from, in order: a tensor named `output` or after the type (`label`, `text`,
...), else the first tensor that fits; a `json` answer is the JSON text of a tensor named
`output` or `json` (or of the only tensor), else all the tensors as an object of lists. A
`label` can also come from class scores (the argmax of a tensor with one score per class, e.g.
a remote ONNX model's `probabilities`) or a class index. The confidence is a one-value tensor
named `confidence`, else the top score of a label's probabilities. A candidate whose outputs
fit none of this has failed (a CandidateOutputError, 502): its own fault, not the caller's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import AbvocError
from core.output_types import MAX_JSON_CHARS, OutputKind, schema_error


class CandidateOutputError(AbvocError):
    """The candidate answered, but not with an output of its declared type."""

    status = 502


def read_answer(kind: OutputKind, outputs: Mapping[str, np.ndarray]) -> tuple[Any, float | None]:
    """(the answer, its confidence or None) from one item's output tensors."""
    arrays = {name: np.asarray(a) for name, a in outputs.items()}
    if not arrays:
        raise CandidateOutputError("the candidate answered with no output tensors")
    reader = {"label": _label, "number": _number, "json": _json}.get(kind.type, _text)
    value, confidence = reader(kind, arrays)
    named = arrays.get("confidence")
    if named is not None and named.size == 1 and named.dtype.kind == "f":
        confidence = float(named.reshape(-1)[0])
    if confidence is not None and not (math.isfinite(confidence) and 0 <= confidence <= 1):
        confidence = None
    return value, confidence


def _pick(kind: OutputKind, arrays: dict[str, np.ndarray], fits: Any) -> np.ndarray | None:
    for name in ("output", kind.type):
        if name in arrays and fits(arrays[name]):
            return arrays[name]
    return next((a for n, a in arrays.items() if n != "confidence" and fits(a)), None)


def _is_bytes(a: np.ndarray) -> bool:
    return a.dtype.kind in "OSU" and a.size == 1


def _one_string(a: np.ndarray) -> str:
    value = a.reshape(-1)[0]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if len(text) > MAX_JSON_CHARS:
        raise CandidateOutputError(f"the candidate's output is longer than {MAX_JSON_CHARS} "
                                   "characters")
    return text


def _text(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_bytes)
    if found is None:
        raise CandidateOutputError(f"a {kind.type!r} candidate must answer with one string "
                                   f"(BYTES) value; got {_shapes(arrays)}")
    return _one_string(found), None


def _label(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_bytes)
    if found is not None:
        label = _one_string(found)
        if label not in kind.classes:
            raise CandidateOutputError(f"the candidate answered label {label!r}, which is not "
                                       f"one of its classes {list(kind.classes)}")
        return label, None
    n = len(kind.classes)
    scores = _pick(kind, arrays, lambda a: a.dtype.kind == "f" and a.size == n)
    if scores is not None:
        flat = scores.reshape(-1).astype(np.float64)
        best = int(np.argmax(flat))
        share = float(flat[best]) if abs(flat.sum() - 1.0) < 1e-3 else None
        return kind.classes[best], share
    index = _pick(kind, arrays, lambda a: a.dtype.kind in "iu" and a.size == 1)
    if index is not None:
        at = int(index.reshape(-1)[0])
        if not 0 <= at < n:
            raise CandidateOutputError(f"the candidate answered class index {at}, out of range "
                                       f"for its {n} classes (0 to {n - 1})")
        return kind.classes[at], None
    raise CandidateOutputError(f"a 'label' candidate must answer with one class name, "
                               f"{n} class scores or a class index; got {_shapes(arrays)}")


def _number(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_number)
    if found is None:
        raise CandidateOutputError(f"a 'number' candidate must answer with one numeric value; "
                                   f"got {_shapes(arrays)}")
    value = float(found.reshape(-1)[0])
    if not math.isfinite(value):
        raise CandidateOutputError(f"the candidate answered {value}, not a finite number")
    return value, None


def _is_number(a: np.ndarray) -> bool:
    """One numeric value: a numeric tensor's, or a Python number in an object array (what a
    Python stage that fills `np.empty(1, object)` answers)."""
    if a.size != 1:
        return False
    if a.dtype.kind == "O":
        value = a.reshape(-1)[0]
        return isinstance(value, int | float | np.integer | np.floating) \
            and not isinstance(value, bool | np.bool_)
    return a.dtype.kind in "fiu"


def _json(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    # JSON text in a tensor named `output` or `json`, or in the only tensor; else every tensor.
    named = [arrays[n] for n in ("output", "json") if n in arrays]
    if not named and len(arrays) == 1:
        named = list(arrays.values())
    found = named[0] if named else None
    if found is not None and _is_bytes(found):
        try:
            value = json.loads(_one_string(found))
        except ValueError as exc:
            raise CandidateOutputError(f"the candidate's JSON output does not parse: {exc}") \
                from exc
    else:
        value = {n: _plain(a) for n, a in arrays.items()}
    if len(json.dumps(value)) > MAX_JSON_CHARS:
        raise CandidateOutputError(f"the candidate's JSON output is longer than "
                                   f"{MAX_JSON_CHARS} characters")
    first = schema_error(kind.schema, value)
    if first is not None:
        raise CandidateOutputError(f"the candidate's JSON output does not match its schema:"
                                   f" {first.message}")
    return value, None


def _plain(a: np.ndarray) -> Any:
    if a.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in a.reshape(-1)]
    return a.tolist()


def _shapes(arrays: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{n}: {a.dtype} {list(a.shape)}" for n, a in arrays.items())
