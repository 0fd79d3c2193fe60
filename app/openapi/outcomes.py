"""The outcome routes (app/api/outcomes.py): report an outcome, define and list an experiment's
outcome metrics."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ADMIN, EXPERIMENT_ID, SCHEMAS, error_responses, json_response
from core.ids import MAX_ROW_ID
from core.outcome_metrics import COMBINES, DIRECTIONS, KINDS, MISSING, NAME_PATTERN

_NAME = {"type": "string", "pattern": NAME_PATTERN}
_OPTIONAL_NAME = {"type": ["string", "null"], "pattern": NAME_PATTERN}

SCHEMAS["OutcomeRequest"] = {
    "type": "object", "required": ["metric", "value"], "additionalProperties": False,
    "description": "Tie the outcome to a prediction (prediction_id and receipt) or to a unit "
                   "(unit_id and experiment_id).",
    "properties": {
        "prediction_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
        "receipt": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
        "unit_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
        "experiment_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ROW_ID},
        "metric": {**_NAME, "description": "a metric defined on the experiment"},
        "value": {"type": ["number", "boolean"],
                  "description": "0/1 or true/false for a proportion metric; a number else"},
        "observed_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64,
                        "description": "when it happened, with its offset (default: now)"},
        "event_id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._:-]{1,64}$",
                     "description": "the sender's id of the event: the same id is counted "
                                    "once"}}}
SCHEMAS["OutcomeAccepted"] = {
    "type": "object", "required": ["outcome_id", "experiment_id", "duplicate"],
    "properties": {"outcome_id": {"type": "string"}, "experiment_id": {"type": "integer"},
                   "duplicate": {"type": "boolean"}}}
SCHEMAS["MetricDefinition"] = {
    "type": "object", "required": ["name", "kind", "direction"], "additionalProperties": False,
    "properties": {
        "name": _NAME, "kind": {"type": "string", "enum": list(KINDS)},
        "direction": {"type": "string", "enum": list(DIRECTIONS),
                      "description": "whether a higher or a lower value is better"},
        "combine": {"type": ["string", "null"], "enum": [*COMBINES, None],
                    "description": "how one unit's outcomes combine; proportions take first "
                                   "or max, ratios sum"},
        "numerator": _OPTIONAL_NAME, "denominator": _OPTIONAL_NAME,
        "guardrail": {"type": ["number", "null"]},
        "primary": {"type": "boolean"},
        "missing": {"type": ["string", "null"], "enum": [*MISSING, None],
                    "description": "what a unit exposed in an arm that reported no outcome of "
                                   "the metric counts as: skip (default; the mean over the "
                                   "units that reported it) or zero (0; for a ratio, 0 in both "
                                   "sums)"}}}
SCHEMAS["Metric"] = {
    "type": "object",
    "required": ["name", "kind", "direction", "combine", "guardrail", "primary", "missing"],
    "properties": {
        "name": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)},
        "direction": {"type": "string"}, "combine": {"type": "string"},
        "numerator": {"type": ["string", "null"]}, "denominator": {"type": ["string", "null"]},
        "guardrail": {"type": ["number", "null"]}, "primary": {"type": "boolean"},
        "missing": {"type": "string", "enum": list(MISSING)},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "waiting": {"type": "object", "required": ["outcomes", "oldest_observed_at"],
                    "description": "outcomes stored but not counted yet: their prediction or "
                                   "unit is not known to the service (yet)",
                    "properties": {"outcomes": {"type": "integer", "minimum": 0},
                                   "oldest_observed_at": {"type": ["string", "null"]}}}}}
METRIC = {"$ref": "#/components/schemas/Metric"}
UNIT_OUTCOMES = {
    "type": "object", "required": ["experiment_id", "unit_id", "outcomes"],
    "properties": {
        "experiment_id": {"type": "integer"}, "unit_id": {"type": "string"},
        "outcomes": {"type": "object", "description": "per metric: the outcomes counted ("
                     "n) and how many in each arm; a metric with none counted is absent",
                     "additionalProperties": {
                         "type": "object", "required": ["arms", "n"],
                         "properties": {"n": {"type": "integer", "minimum": 1},
                                        "arms": {"type": "object", "additionalProperties": {
                                            "type": "integer", "minimum": 1}}}}}}}


def outcome_paths() -> dict[str, Any]:
    """POST /v1/outcomes, GET/POST /v1/experiments/{id}/metrics and GET …/unit-outcomes."""
    return {
        "/v1/outcomes": {"post": {
            "summary": "Report an outcome (a game won, a session kept) of a prediction or a unit",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 128}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/OutcomeRequest"}}}},
            "responses": {"202": json_response({"$ref": "#/components/schemas/OutcomeAccepted"},
                                               "Accepted"),
                          **error_responses(400, 401, 403, 404, 409, 413, 503)}}},
        "/v1/experiments/{experiment_id}/metrics": {
            "get": {"summary": "The experiment's outcome metrics", "security": ADMIN,
                    "parameters": [EXPERIMENT_ID],
                    "responses": {"200": json_response({
                        "type": "object", "required": ["metrics"],
                        "properties": {"metrics": {"type": "array", "items": METRIC}}}),
                        **error_responses(401, 403, 404)}},
            "post": {"summary": "Define or change an outcome metric", "security": ADMIN,
                     "parameters": [EXPERIMENT_ID],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/MetricDefinition"}}}},
                     "responses": {"200": json_response(METRIC, "Changed"),
                                   "201": json_response(METRIC, "Defined"),
                                   **error_responses(400, 401, 403, 404, 409)}}},
        "/v1/experiments/{experiment_id}/unit-outcomes": {"get": {
            "summary": "One unit's outcomes as the worker has counted them, per metric",
            "security": ADMIN,
            "parameters": [EXPERIMENT_ID, {
                "name": "unit_id", "in": "query", "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "responses": {"200": json_response(UNIT_OUTCOMES),
                          **error_responses(400, 401, 403, 404)}}},
    }
