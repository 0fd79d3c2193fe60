"""A corrected output checked against the output type of the candidate that made the prediction.

Corrections are truth for the online metrics, so one that cannot be compared with the candidate's
answers (a label outside its classes, a number that is not finite, JSON its schema refuses) is
refused at the door instead of skewing the metrics later. The type is read from the candidate's
registry description (`pipeline.output`, written from a bundle's manifest); candidates without
one are the reference OCR pipelines, whose answers are LaTeX.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema_rs

from core.errors import AbvocError
from core.latex import validate_latex
from core.page_boxes import BOXES_SCHEMA, boxes_problem
from core.text import quoted_names, shown

STRING_TYPES = ("label", "text", "latex")
OUTPUT_TYPES = (*STRING_TYPES, "number", "json")
MAX_OUTPUT_CHARS = 10_000
"""The longest answer a candidate may give (a string, or a JSON value as JSON text); a
correction or a label of it has the same limit, or a long answer could never be put right."""
MAX_CLASS_CHARS = 100
"""The longest name a label output's class may have: the evaluation keeps counts per class and
per (answer, truth) pair of classes in columns of bounded width."""
MAX_NUMBER = 2**53
"""The largest magnitude of a number answer or label, as of any number the API reads: the
evaluation squares errors and sums their squares, and an answer of 1e78 overflowed them."""
MAX_JSON_DEPTH = 30
"""The deepest a JSON value may nest: the API's bodies nest at most 32 levels, the value inside
them less; a label typed on the Annotate page is held to the same (its text is no body)."""
MAX_JSON_CHARS = MAX_OUTPUT_CHARS  # the name serving reads its answers' limit by
STAGE_ANSWERS = "answers"
"""The key of a prediction's ``stages`` that lists, in pipeline order, what each bundle stage
declaring an ``answer`` answered and, last, the output: ``[{"stage": name, "answer": text}]``,
each in the form the store keeps outputs (:func:`core.events.value_text` of the type)."""
RIGHT = "correct"
"""What stage attribution reports for a right answer in place of a stage (so no stage has it)."""


@dataclass(frozen=True)
class OutputKind:
    """What a candidate answers: its type, a label's classes, a JSON answer's schema (read by
    serving to make answers and by feedback to check corrections), and for a page's boxes the
    page's (width, height) where feedback knows it, so a box past its edges is refused."""

    type: str
    classes: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    page: tuple[int, int] | None = None

    @classmethod
    def of_pipeline(cls, pipeline: Mapping[str, Any] | None) -> OutputKind:
        described = (pipeline or {}).get("output")
        if not isinstance(described, Mapping) or described.get("type") not in OUTPUT_TYPES:
            return cls("latex")
        schema = described.get("schema")
        return cls(str(described["type"]), tuple(described.get("classes") or ()),
                   schema if isinstance(schema, dict) else None)

    @property
    def page_boxes(self) -> bool:
        """Whether the answer is a page's formula boxes (:mod:`core.page_boxes`): a page
        extraction candidate's, which serves the page scope of /v1/pages, not formulas."""
        return self.type == "json" and self.schema == BOXES_SCHEMA


def check_output(kind: OutputKind, value: Any) -> Any:
    """The corrected output as the event carries it (a string, a float or a JSON value), or an
    AbvocError (400) that says what a correction of this candidate must look like."""
    if kind.type in STRING_TYPES:
        return _string(kind, value)
    if kind.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or (isinstance(value, float) and not math.isfinite(value)):
            raise AbvocError(f"'corrected_output' must be a finite JSON number: the candidate "
                             f"answers numbers; got {_show(value)}")
        if abs(value) > MAX_NUMBER:  # an int past float range too (math.isfinite raises)
            raise AbvocError(f"'corrected_output' {shown(str(value), 24)} is out of range: a "
                             f"number label is at most 2^53 ({MAX_NUMBER}) in magnitude")
        return float(value)
    return _json(kind, value)


def _string(kind: OutputKind, value: Any) -> str:
    # Text may be empty: "this input holds no text" is a truth (a blank crop, a caption of
    # nothing). A label must be a class, and an empty formula is not one (validate_latex).
    if not isinstance(value, str) or (not value and kind.type != "text"):
        string = "a string" if kind.type == "text" else "a non-empty string"
        raise AbvocError(f"'corrected_output' must be {string}: the candidate answers "
                         f"{kind.type}; got {_show(value)}")
    if len(value) > MAX_OUTPUT_CHARS:
        raise AbvocError(f"'corrected_output' is {len(value)} characters; the limit is "
                         f"{MAX_OUTPUT_CHARS}")
    if kind.type == "label" and value not in kind.classes:
        raise AbvocError(f"'corrected_output' {shown(value)} is not one of the candidate's "
                         f"classes {classes_shown(kind.classes)}")
    if kind.type == "latex":
        problems = validate_latex(value)
        if problems:
            raise AbvocError("'corrected_output' is not valid LaTeX: " + "; ".join(problems),
                             details={"problems": problems})
    return value


def json_bounds(value: Any) -> str | None:
    """What puts a JSON value past the bounds any JSON the API reads keeps (nesting, numbers
    of at most 2^53), else None; walked without recursion, so any depth is safe to look at."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"nests more than {MAX_JSON_DEPTH} levels deep"
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                   else item))
        elif isinstance(item, int | float) and not isinstance(item, bool) and (
                isinstance(item, int) or math.isfinite(item)) and abs(item) > MAX_NUMBER:
            return f"holds a number past 2^53 ({MAX_NUMBER}) in magnitude, out of range"
    return None


def _json(kind: OutputKind, value: Any) -> Any:
    if (problem := json_bounds(value)) is not None:
        raise AbvocError(f"'corrected_output' {problem}")
    try:  # a lenient parser's NaN (a Label Studio file): no JSON reader takes it back
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise AbvocError("'corrected_output' holds a number that is not finite (NaN or "
                         "Infinity): JSON has none") from None
    if len(text) > MAX_OUTPUT_CHARS:
        raise AbvocError(f"'corrected_output' is longer than {MAX_OUTPUT_CHARS} characters as "
                         "JSON")
    error = schema_error(kind.schema, value)
    if error is not None:
        raise AbvocError(f"'corrected_output' does not match the candidate's JSON Schema "
                         f"{schema_problem(error)}")
    if kind.page_boxes and (problem := boxes_problem(value, kind.page)) is not None:
        raise AbvocError(f"'corrected_output' {problem}")
    return value


def schema_problem(error: Any) -> str:
    """Where a value breaks a JSON Schema and how, as ``at /path: message``: the validator's
    message quotes the value whole, so it is shortened (:func:`core.text.shown`)."""
    path = "/".join(str(p) for p in error.instance_path)
    return f"at {f'/{path}' if path else '(root)'}: {shown(error.message, 200, str)}"


def schema_error(schema: dict[str, Any] | None, value: Any) -> Any:
    """The first way `value` breaks `schema` (a jsonschema-rs ValidationError), or None; the
    compiled validator is kept per schema, since answers and corrections check it per request."""
    if schema is None:
        return None
    return next(iter(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value)), None)


@lru_cache(maxsize=32)
def _validator(schema_text: str) -> Any:
    return json_schema_validator(json.loads(schema_text))


def json_schema_validator(schema: Any) -> Any:
    """A validator for a team's JSON Schema that resolves only references within it: an
    external ``$ref`` (a file on this host, a URL) would make the service read its own files or
    call out while a bundle registers, so it is refused as not resolvable."""
    return jsonschema_rs.validator_for(schema, retriever=_no_external_references)


def _no_external_references(uri: str) -> Any:
    raise ValueError(f"abvoc resolves no external references ({uri[:200]}); put the schema "
                     "it names under $defs and refer to it as #/$defs/...")


_JSON_KINDS = {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
               dict: "object"}


def _show(value: Any) -> str:
    """What an HTTP client sent, its JSON kind and itself as JSON, shortened
    (:func:`core.text.shown`): Python's type names ("got NoneType null") are no client's words."""
    if value is None:
        return "null"
    return f"{_JSON_KINDS.get(type(value), 'value')} {shown(value, form=json.dumps)}"


def classes_shown(classes: tuple[str, ...] | list[str]) -> str:
    """A label candidate's classes as a message lists them (:func:`quoted_names`, as typed: a
    list's repr printed brackets and escapes no one typed): whole for the usual few, the first
    ones and the count for a candidate with thousands."""
    return quoted_names(classes, 200)
