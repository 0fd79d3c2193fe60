"""Building blocks of the OpenAPI document: shared schemas, parameters and responses."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from core.builtin_metrics import PRIMARY_METRICS
from core.ids import MAX_ROW_ID
from serving.experiment_spec import (
    EXPECTED_SAMPLE,
    GUARDRAIL_WINDOW,
    GUARDRAILS,
    MAX_ARMS,
    MAX_WEIGHT,
    MIN_SHARE,
    SCOPE_PATTERN,
    SHADOW_PREFIX,
)
from serving.images import encode_png

# A blank 16x16 PNG: small enough for the document, a valid image for the examples and links.
SAMPLE_IMAGE = base64.b64encode(encode_png(np.full((16, 16), 255, np.uint8))).decode()

ERROR = {"$ref": "#/components/schemas/Error"}


def error_responses(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input; the message says what to fix", 401: "No valid API key",
            403: "The key lacks the scope, or the receipt does not match",
            404: "Not found", 405: "Method not allowed",
            409: "Conflicts with the current state",
            413: "Too large",
            415: "A Content-Encoding abvoc does not read (it reads gzip and deflate)",
            429: "The key sent more than ABVOC_RATE_LIMIT requests a second; retry after the "
                 "Retry-After header's seconds",
            500: "The candidate itself failed on this input (a stage raised); recorded as its "
                 "failure, details carry its prediction_id and receipt",
            502: "The candidate's server answered with an error",
            503: "Not ready, the store unavailable or busy (send it again after the "
                 "Retry-After header's seconds), or the candidate failed",
            504: "The candidate's server did not answer in time"}
    return {str(c): {"description": text[c],
                     "content": {"application/json": {"schema": ERROR}}} for c in codes}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


EXPERIMENT_ID = {"name": "experiment_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}}
ARM = {"name": "arm", "in": "path", "required": True,
       "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
ADMIN = [{"apiKey": []}, {"bearer": []}]
# Control characters (Unicode's Cc), refused in names and reasons (core.text.text_problem).
_CC = "\\u0000-\\u001f\\u007f-\\u009f"
REASON_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    # Words, not blank, no control characters (shown on one line: serving.experiments).
    "properties": {"reason": {"type": ["string", "null"], "maxLength": 500,
                              "pattern": f"^[^{_CC}]*[^\\s{_CC}][^{_CC}]*$"}}}}}}

ARM_SCHEMA = {
    "type": "object", "required": ["name", "candidate", "weight"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100,
                            "not": {"pattern": f"^{SHADOW_PREFIX}"}},
                   "candidate": {"type": "string", "minLength": 1, "maxLength": 200},
                   "version": {"type": ["string", "null"], "minLength": 1, "maxLength": 50,
                               "description": "a registered, active version; omitted: the "
                                              "newest now, kept for the experiment's life"},
                   "weight": {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT,
                              "description": "0, or enough to get one of the 10,000 "
                                             "assignment buckets (1/10,000 of the total)"},
                   "control": {"type": "boolean"}},
}
GUARDRAIL_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        **{name: {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": limit}
           for name, limit in GUARDRAILS.items()},
        "min_samples": {"type": "integer", "minimum": 1, "maximum": GUARDRAIL_WINDOW}}}

# A prediction's unit: optional only where the scope's experiment has unit `request`.
UNIT_ID = {"type": "string", "minLength": 1, "maxLength": 200,
           "description": "the user or session the request is for (or in the X-Abvoc-Unit-Id "
                          "header; two different ids, one in each, are a 400); required except "
                          "where the scope's experiment has unit 'request' (each request its "
                          "own unit)"}
UNIT_HEADER_PARAM = {"name": "X-Abvoc-Unit-Id", "in": "header", "required": False,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                     "description": "the unit, in place of the body's unit_id or the same id "
                                    "(two different ids are a 400); ASCII only, no comma"}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"],
              "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                             "details": {}}},
    "PredictJSON": {
        "type": "object", "required": ["image_base64"], "additionalProperties": False,
        "properties": {
            "image_base64": {"type": "string", "description": "PNG or JPEG, base64"},
            "unit_id": UNIT_ID,
            "scope": {"type": ["string", "null"], "maxLength": 100},
            "slice": {"type": ["string", "null"], "maxLength": 100}}},
    "PredictMultipart": {
        "type": "object", "required": ["image"], "additionalProperties": False,
        "properties": {"image": {"type": "string", "format": "binary"},
                       "unit_id": UNIT_ID,
                       "scope": {"type": "string", "maxLength": 100},
                       "slice": {"type": "string", "maxLength": 100}}},
    "Prediction": {
        "type": "object", "required": ["prediction_id", "output", "confidence", "receipt"],
        "properties": {
            "prediction_id": {"type": "string"}, "output": {"type": "string"},
            "confidence": {"type": ["number", "null"]}, "receipt": {"type": "string"},
            "candidate": {"type": "string", "description": "admin keys only"},
            "arm": {"type": ["string", "null"]}, "experiment_id": {"type": ["integer", "null"]},
            "slice": {"type": "string"}, "latency_ms": {"type": "number"}}},
    "CorrectionRequest": {
        "type": "object", "required": ["prediction_id", "receipt", "corrected_output"],
        "additionalProperties": False,
        "properties": {"prediction_id": {"type": "string", "maxLength": 64},
                       "receipt": {"type": "string", "maxLength": 128},
                       "corrected_output": {
                           "description": "the right answer in the candidate's output type: "
                                          "one of its classes (label), a string (text, latex; "
                                          "the OCR candidates take LaTeX), a finite number "
                                          "(number), a value valid against its schema (json)"},
                       "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
                       "comment": {"type": ["string", "null"], "maxLength": 2000}}},
    "CorrectionAccepted": {
        "type": "object", "required": ["correction_id", "prediction_id", "duplicate"],
        "properties": {"correction_id": {"type": "string"}, "prediction_id": {"type": "string"},
                       "duplicate": {"type": "boolean"},
                       "earlier_corrections": {
                           "type": "integer", "minimum": 0,
                           "description": "other corrections of the prediction accepted before "
                                          "this new one: the first is its truth (unless a "
                                          "verified label overrides it); later ones are kept "
                                          "as what customers said"}}},
    "ExperimentSpec": {
        "type": "object", "required": ["name", "arms"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100,
                     "pattern": f"^[^\\s{_CC}](?:[^{_CC}]*[^\\s{_CC}])?$",
                     "description": "unique; no whitespace at either end, no control "
                                    "characters"},
            "scope": {"type": "string", "minLength": 1, "maxLength": 100,
                      "pattern": SCOPE_PATTERN,
                      "description": "the model name in /v2/models/{scope}/infer, one URL "
                                     "path segment: no '/', '\\', '?', '#', '%' or control "
                                     "characters, no whitespace at either end, not . or .."},
            "unit": {"type": "string", "enum": ["user", "session", "request"]},
            "salt": {"type": ["string", "null"], "minLength": 1, "maxLength": 64,
                     "description": "null or left out: a random one"},
            "arms": {"type": "array", "minItems": 2, "maxItems": MAX_ARMS, "items": ARM_SCHEMA},
            "shadows": {"type": ["array", "null"], "uniqueItems": True, "items": {
                "type": "object", "required": ["candidate"], "additionalProperties": False,
                "properties": {"candidate": {"type": "string"},
                               "version": {"type": ["string", "null"], "minLength": 1,
                                           "maxLength": 50}}}},
            "canary": {"type": ["object", "null"], "additionalProperties": False, "properties": {
                "treatment": {"type": "string"},
                "steps": {"type": "array", "minItems": 1, "items": {
                    "type": "number", "minimum": MIN_SHARE, "maximum": 1}},
                "advance_after_s": {"type": ["number", "null"]},
                "advance_after_n": {"type": ["number", "null"]}}},
            "guardrails": {**GUARDRAIL_SCHEMA, "type": ["object", "null"]},
            "primary_metric": {"type": "string",
                               "enum": list(PRIMARY_METRICS)},
            "expected_sample_per_arm": {
                "type": ["integer", "null"], "minimum": EXPECTED_SAMPLE[0],
                "maximum": EXPECTED_SAMPLE[1],
                "description": "units per arm expected by the end (default 5,000): the "
                               "always-valid intervals are tightest there"}}},
    "Experiment": {
        "type": "object",
        "required": ["id", "name", "scope", "status", "unit", "arms", "weights", "shadows"],
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "scope": {"type": "string"},
            "status": {"type": "string",
                       "enum": ["draft", "running", "paused", "killed", "stopped"]},
            "status_reason": {"type": "string"}, "unit": {"type": "string"},
            "salt": {"type": "string"}, "arms": {"type": "array", "items": {"type": "object"}},
            "weights": {"type": "array", "items": {"type": "number"}},
            "shadows": {"type": "array"}, "canary": {"type": "object"},
            "guardrails": {"type": "object"}, "primary_metric": {"type": "string"},
            "expected_sample_per_arm": {"type": ["integer", "null"]},
            "allocation_table": {
                "type": ["object", "null"],
                "description": "which arm each of the 10,000 assignment buckets serves: format "
                               "`v`, the normalised `weights`, and `runs` of [arm index, "
                               "buckets] in bucket order"},
            "created_at": {"type": ["string", "null"]}, "started_at": {"type": ["string", "null"]},
            "stopped_at": {"type": ["string", "null"]},
            "status_since": {"type": ["string", "null"],
                             "description": "when the status and its reason last changed "
                                            "(null: not kept by a store before revision 0025)"}}},
}


def csv_report(summary: str) -> dict[str, Any]:
    """The results' comparisons as CSV: the same query as /results, a table for an answer."""
    return _as_csv(report(summary, "ResultsReport"),
                   "one row per treatment, metric and slice (the JSON report's `comparisons`), "
                   "led by the experiment's id and name")


def divergence_csv_report(summary: str) -> dict[str, Any]:
    """The divergence report's slice rows or findings as CSV: /divergence's query and `table`."""
    op = report(summary, "DivergenceReport", "alpha", "tolerance")
    op["get"]["parameters"].append({
        "name": "table", "in": "query", "required": False,
        "description": "slices: one row per candidate version and slice, offline beside online "
                       "(nested figures as offline_n, online_accuracy_ci_low, ...); findings: "
                       "the ranked findings",
        "schema": {"type": "string", "enum": ["slices", "findings"], "default": "slices"}})
    return _as_csv(op, "the table asked for, each row led by the experiment's id")


def _as_csv(op: dict[str, Any], rows: str) -> dict[str, Any]:
    op["get"]["responses"]["200"] = {
        "description": f"{rows}; a text cell that would start a spreadsheet formula is "
                       "prefixed with '",
        "content": {"text/csv": {"schema": {"type": "string"}}}}
    return op


def action(summary: str, reason: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "security": ADMIN, "parameters": [EXPERIMENT_ID],
        "responses": {"200": json_response({"$ref": "#/components/schemas/Experiment"}),
                      **error_responses(400, 401, 403, 404, 409)}}
    if reason:
        op["requestBody"] = REASON_BODY
    return {"post": op}


def arm_action(summary: str, reason: bool = False) -> dict[str, Any]:
    """An arm's pause (`reason`: it records why) or resume (no body: the route refuses one)."""
    op = action(summary, reason)
    op["post"]["parameters"] = [EXPERIMENT_ID, ARM]
    return op


# The report shares that may be 0: a tolerance of 0 forgives no gap (an alpha of 0 flags none).
SHARES_FROM_ZERO = frozenset({"tolerance"})


def report(summary: str, schema: str, *shares: str) -> dict[str, Any]:
    window = [{"name": name, "in": "query", "required": False, "description": text,
               "schema": {"type": "string", "format": "date-time"}}
              for name, text in (("since", "keep the units first seen at or after this time "
                                           "(RFC 3339 with its offset; whole hours)"),
                                 ("until", "... and before this time"))]
    params = [EXPERIMENT_ID, *window, {
        "name": "max_slices", "in": "query", "required": False,
        "description": "per-slice figures for at most this many slices (those with the most "
                       "predictions) besides 'all'",
        "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 50}}, {
        "name": "recount_units", "in": "query", "required": False,
        "description": "with since/until: test the window's built-in metrics per unit, "
                       "recounting its units from its stored predictions (one pass over them, "
                       "9-15 µs each; the weekly report does so); false counts predictions, "
                       "and says so; unset recounts a window of at most 20,000 predictions "
                       "and counts a larger one's",
        "schema": {"type": "boolean"}}] + [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "number", "exclusiveMaximum": 1,
                    **({"minimum": 0} if name in SHARES_FROM_ZERO else {"exclusiveMinimum": 0})}}
        for name in shares]
    return {"get": {"summary": summary, "security": ADMIN, "parameters": params,
                    "responses": {"200": json_response({"$ref": f"#/components/schemas/{schema}"}),
                                  **error_responses(400, 401, 403, 404)}}}
