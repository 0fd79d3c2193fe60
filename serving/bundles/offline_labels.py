"""The truth of an offline example and the candidate's answer, in one form each: a label as the
output type holds it (a class, a string, a finite number, a JSON value as the store's text of
it), checked as corrections are (a class of the candidate's, text without lone surrogates or
NUL (empty text included: an input with no text in it), LaTeX that parses, a number that is
finite, JSON valid against the output schema), and an answer in the same form, so the two
compare as the online metrics compare them: a JSON value through
:func:`core.events.value_text`, the one rule for both, in which 2 and 2.0 are equal."""

from __future__ import annotations

import json
import math
from typing import Any

from core.events import value_text
from core.latex import validate_latex
from core.output_types import MAX_NUMBER, classes_shown, schema_error, schema_problem
from core.text import shown, text_problem
from serving.bundles.manifest import OutputSpec
from serving.bundles.offline_metrics import OfflineError


def truth(output: OutputSpec, label: Any, where: str) -> Any:
    """The label as the output type holds it; an error naming the line otherwise."""
    kind = output.type
    # null is "not labeled yet"; a blank formula too, but blank text is a truth: the input
    # holds no text (a blank crop), which a text candidate is right to answer with nothing.
    if (label is None and kind != "json") or (kind == "latex" and isinstance(label, str)
                                               and not label.strip()):
        raise OfflineError(f"{where}: the example is not labeled ({json.dumps(label)}): label it "
                           f"first with the true {kind} (`abvoc dataset split-pages` leaves "
                           "every label null for annotators to fill in)")
    if kind == "label":
        if label not in output.classes:
            raise OfflineError(f"{where}: label {shown(label)} is not one of the candidate's "
                               f"classes {classes_shown(output.classes)}")
    elif kind in ("text", "latex"):
        if not isinstance(label, str):
            raise OfflineError(f"{where}: label must be a string for a {kind!r} output")
        if (problem := text_problem(label)) is not None:
            raise OfflineError(f"{where}: label {problem}")
        if kind == "latex" and (problems := validate_latex(label)):  # as corrections are checked
            raise OfflineError(f"{where}: label {shown(label)} is not valid LaTeX: "
                               + "; ".join(problems))
    elif kind == "number":
        if isinstance(label, bool) or not isinstance(label, int | float) \
                or not math.isfinite(label):
            raise OfflineError(f"{where}: label must be a finite number, got {shown(label)}")
        if abs(label) > MAX_NUMBER:  # its squared error's sums would overflow, as online
            raise OfflineError(f"{where}: label {shown(label)} is out of range: a number label "
                               f"is at most 2^53 ({MAX_NUMBER}) in magnitude")
        label = float(label)
    else:
        _check_json(output, label, where)
        label = value_text(label, "json")
    return label


def _check_json(output: OutputSpec, value: Any, where: str) -> None:
    error = schema_error(output.schema or {}, value)
    if error is not None:
        raise OfflineError(f"{where}: label does not match the output schema "
                           f"{schema_problem(error)}")


def stored_answer(output: OutputSpec, value: Any) -> Any:
    """An answer as serving reads it (:func:`serving.outputs.read_answer`), in the form
    :func:`truth` keeps labels: a `json` value as the store's text of it, as online."""
    return value_text(value, "json") if output.type == "json" else value
