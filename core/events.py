"""Versioned JSON events and their schemas (the files in core/schemas/ are the documentation).

An event is a plain dict; `make_event` stamps the envelope (id, type, version, time) and validates,
so a producer can never emit an event that fails its schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
import orjson

from core.errors import AbvocError, EventSchemaError
from core.ids import time_ordered_id
from core.store.db import utcnow
from core.text import shown, text_problem

PREDICTION_MADE = "PredictionMade"
CORRECTION_SUBMITTED = "CorrectionSubmitted"
OUTCOME_RECORDED = "OutcomeRecorded"
EVENT_TYPES = (PREDICTION_MADE, CORRECTION_SUBMITTED, OUTCOME_RECORDED)
# PredictionMade v2 and CorrectionSubmitted v3: an output of any output type (earlier versions:
# LaTeX text only); PredictionMade v3: the candidate version that answered and a forced arm.
# Every version is read.
CURRENT_VERSION = {PREDICTION_MADE: 3, CORRECTION_SUBMITTED: 3, OUTCOME_RECORDED: 1}

# Which topic (after the configured prefix) carries each event type, and which fields key it
# (the first one present): predictions and corrections are keyed by prediction id, so one
# prediction's events stay in one partition, in order; an outcome by its prediction or its unit.
TOPIC_OF = {PREDICTION_MADE: "predictions", CORRECTION_SUBMITTED: "corrections",
            OUTCOME_RECORDED: "outcomes"}
KEY_FIELD = {PREDICTION_MADE: ("prediction_id",), CORRECTION_SUBMITTED: ("prediction_id",),
             OUTCOME_RECORDED: ("prediction_id", "unit_id")}
REASON_CHARS = 400
"""How much of a schema failure's message is kept (its start and its end)."""


@cache
def schema(event_type: str, version: int | None = None) -> dict[str, Any]:
    """The JSON Schema document of an event type (current version by default)."""
    name = f"{event_type}.v{version or CURRENT_VERSION[event_type]}.json"
    return json.loads(resources.files("core.schemas").joinpath(name).read_text())


@cache
def _validator(event_type: str, version: int) -> Any:
    # jsonschema-rs validates in about a microsecond; every event is checked twice on its way.
    return jsonschema_rs.validator_for(schema(event_type, version), validate_formats=True)


def validate_event(event: Any) -> dict[str, Any]:
    """Return the event if it matches its schema, else raise EventSchemaError saying why."""
    if not isinstance(event, dict):
        raise EventSchemaError("an event must be a JSON object")
    event_type = event.get("event_type")
    if event_type not in CURRENT_VERSION:
        raise EventSchemaError(
            f"unknown event_type {shown(event_type)}; expected one of {list(EVENT_TYPES)}"
        )
    version = event.get("schema_version")
    if not isinstance(version, int) or version < 1 or version > CURRENT_VERSION[event_type]:
        raise EventSchemaError(f"unsupported schema_version {shown(version)} for {event_type}")
    validator = _validator(event_type, version)
    if not validator.is_valid(event):
        first = next(iter(validator.iter_errors(event)))
        where = "/".join(str(p) for p in first.instance_path) or "(root)"
        # The validator quotes the value whole (a 3 MB output): cut in the middle, the message
        # keeps what is wrong, which comes last and was lost where a parked reason is cut.
        raise EventSchemaError(shown(f"{event_type} invalid at {where}: {first.message}",
                                     REASON_CHARS, form=str))
    return event


def make_event(event_type: str, **fields: Any) -> dict[str, Any]:
    """A new, validated event with a unique id (time-ordered, see core.ids), the current schema
    version and a UTC timestamp."""
    event = {
        "event_id": time_ordered_id(),
        "event_type": event_type,
        "schema_version": CURRENT_VERSION.get(event_type, 0),
        "occurred_at": utcnow().isoformat(),
        **fields,
    }
    return validate_event(event)


def output_text(event: dict[str, Any]) -> str:
    """A prediction's output as the text the store keeps (:func:`value_text` of its type; v1
    outputs are always LaTeX strings)."""
    return value_text(event["output"], event.get("output_type"))


def corrected_text(event: dict[str, Any]) -> str:
    """A correction's output as the store keeps it, in the same form as `output_text`, so a
    truth and an answer of the same value compare equal (numbers as floats: 3 and 3.0 agree)."""
    value = event["corrected_output"]
    if event.get("output_type") == "number" and isinstance(value, int | float) \
            and not isinstance(value, bool):
        value = float(value)
    return value_text(value, event.get("output_type"))


def value_text(value: Any, output_type: str | None = None) -> str:
    """The store's text form of a value of `output_type`: a ``json`` value always as canonical
    JSON (a string too, so "big" stays a string when read back), label, text and LaTeX strings
    as they are, numbers as compact JSON. An object or array is canonical JSON whatever the
    type given, since only a json value is one."""
    if output_type == "json" or isinstance(value, dict | list | tuple):
        return canonical_json(value)
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value == 0.0:  # -0.0 is 0: one text, one answer
        value = 0.0
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# Integral floats up to 2**53 are exact as integers; beyond, a float keeps its own notation
# (writing 1e300 out digit by digit would make a 300-character label of one number).
_EXACT_INTEGERS = 2.0**53


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and integral floats written as integers (2.0 as 2, at any
    depth), so two equal JSON values always have one text and compare equal in the store."""
    return json.dumps(_integral(value), separators=(",", ":"), sort_keys=True)


def _integral(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _EXACT_INTEGERS:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(v) for v in value]
    return value


def body_hash(fields: dict[str, Any]) -> str:
    """The digest a request body is found again by (a retry without a key): -0.0 as 0.0 at any
    depth, as the store holds it (:func:`value_text`), so a body equal to an accepted one is that
    one again; otherwise the JSON text stored hashes have always been made of."""
    return hashlib.sha256(json.dumps(_signless(fields), sort_keys=True).encode()).hexdigest()


def _signless(value: Any) -> Any:
    if isinstance(value, float) and value == 0.0:
        return 0.0
    if isinstance(value, dict):
        return {k: _signless(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_signless(v) for v in value]
    return value


def typed_value(text: str, output_type: str | None) -> Any:
    """The store's text form back as a value of its type (the reverse of :func:`value_text`):
    a number as a float (``null``, a failed answer, as None), a json value parsed, strings as
    they are. A json row stored before json strings were quoted (``big``) does not parse and is
    that string itself. A number that does not read is a 400 (an annotator's text is first
    held to plain ASCII decimal: feedback.label_studio_tasks.typed_label)."""
    if output_type == "number":
        if text == "null":
            return None
        try:
            return float(text)
        except ValueError:
            raise AbvocError(f"{text[:60]!r} is not a number") from None
    if output_type == "json":
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return text


# Events are encoded and decoded on every request and by every worker batch: orjson does it in a
# tenth of the standard library's time. Text that is not valid UTF-8 (a lone surrogate the input
# checks would refuse first) falls back to the standard encoder, which escapes it.
_FALLBACK = json.JSONEncoder(separators=(",", ":"), sort_keys=True, check_circular=False)


def encode(event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _FALLBACK.encode(event).encode()


ID_FIELDS = ("event_id", "prediction_id", "correction_id", "outcome_id", "unit_id")
"""An event's ids: the store looks them up and compares them, so each must be text it holds."""


def decode(raw: bytes) -> dict[str, Any]:
    """Parse and validate bytes from the bus; raises EventSchemaError for anything unusable.

    An id holding a NUL is refused here, so that the event is parked like any invalid one: the
    schemas cannot say it, PostgreSQL refused the id in the batch's own transaction (the round
    failed again and again, the stream stopped), and SQLite's JSON functions cut it at the NUL
    (the event read as applied before, dropped unparked)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventSchemaError(f"not JSON: {exc}") from exc
    validate_event(event)
    for field in ID_FIELDS:
        value = event.get(field)
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise EventSchemaError(f"{event['event_type']} invalid at {field}: {problem}")
    return event


@dataclass(frozen=True)
class Route:
    topic: str
    key: str


def route(event: dict[str, Any], prefix: str) -> Route:
    """The topic and partition key an event travels under."""
    event_type = event["event_type"]
    key = next(event[f] for f in KEY_FIELD[event_type] if event.get(f) is not None)
    return Route(f"{prefix}.{TOPIC_OF[event_type]}", str(key))


def topics(prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in dict.fromkeys(TOPIC_OF.values())]
