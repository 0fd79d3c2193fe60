"""The shape of a ``_dash-update-component`` body, checked before Dash reads it.

The renderer always sends a well-formed body; only a hand-made request sends an ``outputs`` or
``inputs`` that is missing, empty or of the wrong type, and Dash indexes into it unchecked (a
TypeError, a 500 with a traceback). Refusing such a body here makes it the 400 it is, naming the
field, before any callback (and its role check) runs.
"""

from __future__ import annotations

from typing import Any

from dash import Output
from dash._utils import clean_property_name

MAX_SHOWN = 200


def _spec_problem(spec: Any, field: str) -> str | None:
    """Why one ``{"id": ..., "property": ...}`` entry is malformed, or None."""
    if not isinstance(spec, dict):
        return f"each entry of '{field}' must be an object with 'id' and 'property'"
    if not isinstance(spec.get("id"), str | dict) or not isinstance(spec.get("property"), str):
        return f"each entry of '{field}' needs a text or object 'id' and a text 'property'"
    return None


def _outputs_problem(outputs: Any, expected: Any) -> str | None:
    many = isinstance(expected, list | tuple)
    wanted = list(expected) if many else [expected]
    if many and (not isinstance(outputs, list) or len(outputs) != len(wanted)):
        return f"'outputs' must be a list of {len(wanted)} outputs"
    sent = outputs if many else [outputs]
    for spec, out in zip(sent, wanted, strict=True):
        pattern = isinstance(out.component_id, dict)  # ALL: a list of outputs
        if not isinstance(spec, list | dict if pattern else dict):
            return "'outputs' must hold an output object per output of the callback"
        group = spec if pattern else [spec]
        for one in group:
            problem = _spec_problem(one, "outputs")
            if problem:
                return problem
            try:
                same = Output(one["id"], clean_property_name(one["property"])) == out
            except Exception:  # noqa: BLE001 - any id Dash cannot read is the caller's mistake
                same = False
            if not same:
                return "'outputs' does not match the callback's outputs"
    return None


def _values_problem(values: Any, expected: list[dict[str, Any]], field: str) -> str | None:
    if not isinstance(values, list) or len(values) != len(expected):
        return f"'{field}' must be a list of {len(expected)}"
    for value, want in zip(values, expected, strict=True):
        pattern = str(want.get("id", "")).startswith("{")
        if pattern and not isinstance(value, list):
            return f"each pattern-matching entry of '{field}' must be a list"
        for one in value if pattern else [value]:
            problem = _spec_problem(one, field)
            if problem:
                return problem
    return None


def body_problem(body: Any, callback_map: dict[str, Any]) -> str | None:
    """What is wrong with a callback request's body, or None when Dash can run it."""
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, str) or output not in callback_map:
        shown = output[:MAX_SHOWN] if isinstance(output, str) else output
        return f"no dashboard callback has the output {shown!r}"
    assert isinstance(body, dict)
    callback = callback_map[output]
    problem = (None if callback.get("no_output")
               else _outputs_problem(body.get("outputs"), callback["output"]))
    problem = problem or _values_problem(body.get("inputs"), callback["inputs"], "inputs")
    problem = problem or _values_problem(body.get("state", []), callback["state"], "state")
    changed = body.get("changedPropIds", [])
    if not problem and (not isinstance(changed, list)
                        or not all(isinstance(c, str) for c in changed)):
        problem = "'changedPropIds' must be a list of text"
    return problem
