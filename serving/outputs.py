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
So has one whose answer is no valid value of its type (NaN class scores, a text answer that is
not a string or holds NUL, a JSON answer holding NaN or a Python object, a number past float
range): served, it would be a wrong answer that no correction could ever equal; and one with a
float tensor holding NaN or +Infinity, whichever tensor the answer is read from.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from core.errors import AbvocError
from core.output_types import MAX_JSON_CHARS, MAX_NUMBER, OutputKind, schema_error
from core.text import quoted_names, text_problem


class CandidateOutputError(AbvocError):
    """The candidate answered, but not with an output of its declared type: the same input
    gets the same answer again, so the caller is not told to try again."""

    status = 502
    repeats = True


class AnswerTooLong(CandidateOutputError):
    """The answer is longer than MAX_JSON_CHARS: the candidate's failure for one item, the
    caller's request size for many (serving.servable makes that a 413)."""


def read_answer(kind: OutputKind, outputs: Mapping[str, np.ndarray]) -> tuple[Any, float | None]:
    """(the answer, its confidence or None) from one item's output tensors."""
    arrays = {name: np.asarray(a) for name, a in outputs.items()}
    if not arrays:
        raise CandidateOutputError("the candidate answered with no output tensors")
    reader = {"label": _label, "number": _number, "json": _json}.get(kind.type, _text)
    value, confidence = reader(kind, arrays)
    _no_nan(arrays)  # after the reader, whose words say more where the answer itself is NaN
    named = arrays.get("confidence")
    if named is not None and named.size == 1 and named.dtype.kind == "f":
        confidence = float(named.reshape(-1)[0])
    if confidence is not None and not (math.isfinite(confidence) and 0 <= confidence <= 1):
        confidence = None
    return value, confidence


def _no_nan(arrays: dict[str, np.ndarray]) -> None:
    """Refuse an answer whose float tensor holds NaN or +Infinity, whichever tensor the answer
    is read from: a local bundle's stage that picked its label from NaN probabilities was
    served (200, the probabilities as null) where the same model on a remote server, answering
    the probabilities alone, failed. -Infinity passes: a log-probability's "impossible"."""
    for name, array in arrays.items():
        if array.dtype.kind == "f" and array.size and not array.max() < math.inf:
            raise CandidateOutputError(
                f"the candidate's output tensor {name[:100]!r} holds NaN or +Infinity "
                f"({np.array2string(array.astype(np.float64).reshape(-1), threshold=12)}): "
                "no answer may be read from it or served with it")


def _pick(kind: OutputKind, arrays: dict[str, np.ndarray], fits: Any) -> np.ndarray | None:
    for name in ("output", kind.type):
        if name in arrays and fits(arrays[name]):
            return arrays[name]
    return next((a for n, a in arrays.items() if n != "confidence" and fits(a)), None)


def _is_bytes(a: np.ndarray) -> bool:
    return a.dtype.kind in "OSU" and a.size == 1


def _one_string(kind: OutputKind, a: np.ndarray) -> str:
    """The one str or UTF-8 bytes value of `a`, storable as text (no NUL, no lone surrogate):
    str() of anything else would serve a stage's bug (None, a dict) as an answer."""
    value = a.reshape(-1)[0]
    what = "JSON text" if kind.type == "json" else f"{kind.type} answer"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CandidateOutputError(f"the candidate's {what} is bytes that are not valid "
                                       f"UTF-8 ({exc.reason} at byte {exc.start})") from None
    elif not isinstance(value, str):
        raise CandidateOutputError(f"a {kind.type!r} candidate's {what} must be a str or bytes "
                                   f"(UTF-8) value; got a value of type {type(value).__name__}")
    _check_length(value)
    problem = text_problem(value)
    if problem is not None:
        raise CandidateOutputError(f"the candidate's {what} {problem}")
    return str(value)


def _label_string(a: np.ndarray) -> str:
    """A label as text, whatever the candidate put there: only its classes are taken."""
    value = a.reshape(-1)[0]
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = str(value)
        except Exception:  # a team's object whose __str__ fails, an int past str()'s limit
            text = f"<a {type(value).__name__}>"
    _check_length(text)
    return text


def _check_length(text: str) -> None:
    if len(text) > MAX_JSON_CHARS:
        raise AnswerTooLong(f"the candidate's output is longer than {MAX_JSON_CHARS} "
                            "characters")


def _text(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_bytes)
    if found is None:
        raise CandidateOutputError(f"a {kind.type!r} candidate must answer with one string "
                                   f"(BYTES) value; got {_shapes(arrays)}")
    return _one_string(kind, found), None


def _label(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_bytes)
    if found is not None:
        label = _label_string(found)
        if label not in kind.classes:
            raise CandidateOutputError(f"the candidate answered label {label!r}, which is not "
                                       f"one of its classes {quoted_names(kind.classes)}")
        return label, None
    n = len(kind.classes)
    scores = _pick(kind, arrays, lambda a: a.dtype.kind == "f" and a.size == n)
    if scores is not None:
        best, share = _top_score(scores.reshape(-1))
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


def _top_score(flat: np.ndarray) -> tuple[int, float | None]:
    """The index of the top class score, and the score itself where the scores sum to 1 (a
    probability). A few scores, as most classifiers have, are read as Python floats (numpy's
    five reductions cost more than the rest of reading the answer); more go through numpy.
    Both pick the first of equal top scores and sum left to right below eight values, as
    numpy does."""
    if flat.size <= _FEW_SCORES:
        values = flat.tolist()
        # -inf is a log-probability's "impossible"; NaN (which argmax would pick) never fits.
        top = max(values)
        if any(v != v for v in values) or not math.isfinite(top):
            _not_finite(flat)
        best = values.index(top)
        total = sum(values)
    else:
        wide = flat.astype(np.float64)
        if np.isnan(wide).any() or not np.isfinite(wide.max()):
            _not_finite(flat)
        best = int(np.argmax(wide))
        top, total = float(wide[best]), float(wide.sum())
    return best, (float(top) if abs(total - 1.0) < 1e-3 else None)


_FEW_SCORES = 7
"""Up to this many scores are read in Python: below eight values numpy sums one by one too, so
the share (and whether the scores sum to 1) is the same to the bit."""


def _not_finite(flat: np.ndarray) -> NoReturn:
    raise CandidateOutputError(f"the candidate's class scores are not finite "
                               f"({np.array2string(flat.astype(np.float64), threshold=12)}): "
                               "scores must be numbers with a finite top score")


def _number(kind: OutputKind, arrays: dict[str, np.ndarray]) -> tuple[Any, float | None]:
    found = _pick(kind, arrays, _is_number)
    if found is None:
        raise CandidateOutputError(f"a 'number' candidate must answer with one numeric value; "
                                   f"got {_shapes(arrays)}")
    try:
        value = float(found.reshape(-1)[0])
    except OverflowError:  # a Python int in an object array, say 10**400
        raise CandidateOutputError("the candidate answered a number out of float range (a "
                                   f"float holds up to about {sys.float_info.max:.1e})") from None
    if not math.isfinite(value):
        raise CandidateOutputError(f"the candidate answered {value}, not a finite number")
    if abs(value) > MAX_NUMBER:  # the bound corrections and labels are held to
        raise CandidateOutputError(f"the candidate answered {value:.6g}, out of the range a "
                                   f"number answer may take (at most 2^53 in magnitude)")
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
            value = json.loads(_one_string(kind, found))
        except RecursionError:
            raise CandidateOutputError("the candidate's JSON output is nested too deeply to "
                                       "read") from None
        except ValueError as exc:
            raise CandidateOutputError(f"the candidate's JSON output does not parse: {exc}") \
                from exc
    else:
        value = {n: _plain(a) for n, a in arrays.items()}
    problem = _json_problem(value)
    if problem is not None:
        raise CandidateOutputError(problem)
    if len(json.dumps(value)) > MAX_JSON_CHARS:
        raise AnswerTooLong(f"the candidate's JSON output is longer than {MAX_JSON_CHARS} "
                            "characters")
    first = schema_error(kind.schema, value)
    if first is not None:
        raise CandidateOutputError(f"the candidate's JSON output does not match its schema:"
                                   f" {first.message}")
    return value, None


def _plain(a: np.ndarray) -> Any:
    """A tensor as a JSON list: strings decoded, numbers as Python numbers; what an object
    array holds is kept as it is, for _json_problem to judge (str() would serve any object)."""
    if a.dtype.kind in "OS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes)
                else v.item() if isinstance(v, np.generic) else v for v in a.reshape(-1)]
    return a.tolist()


def _json_problem(value: Any) -> str | None:
    """Why `value` is no JSON value a store or a strict parser takes (NaN, a number past float
    range, a Python object), naming where; None when it is one. Iterative: JSON text may nest
    as deep as its parser allows."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        where = path or "(root)"
        if isinstance(item, float) and not math.isfinite(item):
            return f"the candidate's JSON answer holds a number that is not finite ({item} at " \
                f"{where}): JSON numbers are finite"
        if isinstance(item, int) and not isinstance(item, bool) \
                and abs(item) > sys.float_info.max:
            return f"a JSON answer must hold JSON values: it holds a number out of float range " \
                f"at {where}"
        if isinstance(item, dict):
            keys = [k for k in item if not isinstance(k, str)]
            if keys:
                return f"a JSON answer must hold JSON values: an object at {where} has a " \
                    f"{type(keys[0]).__name__} key (object keys are strings)"
            stack.extend((f"{path}/{k}", v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}/{i}", v) for i, v in reversed(list(enumerate(item))))
        elif not (item is None or isinstance(item, str | int | float)):
            return f"a JSON answer must hold JSON values (objects, arrays, strings, numbers, " \
                f"true, false, null); it holds a {type(item).__name__} at {where}"
    return None


def _shapes(arrays: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{n}: {a.dtype} {list(a.shape)}" for n, a in arrays.items())
