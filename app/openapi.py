"""The OpenAPI 3 document for every endpoint, served at /openapi.json (schemathesis checks it).

Links chain the operations the way a session uses them — candidates → create an experiment →
start it → predict in its scope → correct the prediction → read the results — so a stateful
test (schemathesis' stateful phase) walks that path with real ids and receipts.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from serving.experiments import GUARDRAILS, MAX_ARMS, MAX_WEIGHT, SHADOW_PREFIX
from serving.images import encode_png

# A blank 16x16 PNG: small enough for the document, a valid image for the examples and links.
SAMPLE_IMAGE = base64.b64encode(encode_png(np.full((16, 16), 255, np.uint8))).decode()

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input; the message says what to fix", 401: "No valid API key",
            403: "The key lacks the scope, or the receipt does not match",
            404: "Not found", 405: "Method not allowed",
            409: "Conflicts with the current state",
            413: "Too large", 503: "Not ready or the candidate failed"}
    return {str(c): {"description": text[c],
                     "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


EXPERIMENT_ID = {"name": "experiment_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
ARM = {"name": "arm", "in": "path", "required": True,
       "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
ADMIN = [{"apiKey": []}, {"bearer": []}]
REASON_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}}}}}}

ARM_SCHEMA = {
    "type": "object", "required": ["name", "candidate", "weight"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100,
                            "not": {"pattern": f"^{SHADOW_PREFIX}"}},
                   "candidate": {"type": "string", "minLength": 1, "maxLength": 200},
                   "weight": {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT},
                   "control": {"type": "boolean"}},
}
GUARDRAIL_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        **{name: {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": limit}
           for name, limit in GUARDRAILS.items()},
        "min_samples": {"type": "integer", "minimum": 1, "maximum": 10**9}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"],
              "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                             "details": {}}},
    "PredictJSON": {
        "type": "object", "required": ["image_base64", "unit_id"], "additionalProperties": False,
        "properties": {
            "image_base64": {"type": "string", "description": "PNG or JPEG, base64"},
            "unit_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "scope": {"type": ["string", "null"], "maxLength": 100},
            "slice": {"type": ["string", "null"], "maxLength": 100}}},
    "PredictMultipart": {
        "type": "object", "required": ["image", "unit_id"],
        "properties": {"image": {"type": "string", "format": "binary"},
                       "unit_id": {"type": "string", "minLength": 1, "maxLength": 200},
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
                       "corrected_output": {"type": "string", "maxLength": 2000},
                       "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
                       "comment": {"type": ["string", "null"], "maxLength": 2000}}},
    "CorrectionAccepted": {
        "type": "object", "required": ["correction_id", "prediction_id", "duplicate"],
        "properties": {"correction_id": {"type": "string"}, "prediction_id": {"type": "string"},
                       "duplicate": {"type": "boolean"}}},
    "ExperimentSpec": {
        "type": "object", "required": ["name", "arms"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
            "scope": {"type": "string", "minLength": 1, "maxLength": 100},
            "unit": {"type": "string", "enum": ["user", "session", "request"]},
            "salt": {"type": ["string", "null"], "maxLength": 64},
            "arms": {"type": "array", "minItems": 2, "maxItems": MAX_ARMS, "items": ARM_SCHEMA},
            "shadows": {"type": ["array", "null"], "uniqueItems": True, "items": {
                "type": "object", "required": ["candidate"], "additionalProperties": False,
                "properties": {"candidate": {"type": "string"}}}},
            "canary": {"type": ["object", "null"], "properties": {
                "treatment": {"type": "string"},
                "steps": {"type": "array", "items": {"type": "number"}},
                "advance_after_s": {"type": ["number", "null"]},
                "advance_after_n": {"type": ["number", "null"]}}},
            "guardrails": {**GUARDRAIL_SCHEMA, "type": ["object", "null"]},
            "primary_metric": {"type": "string",
                               "enum": ["correction_rate", "error_rate", "latency_p99_ms"]}}},
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
            "allocation_table": {"type": ["string", "null"]},
            "created_at": {"type": ["string", "null"]}, "started_at": {"type": ["string", "null"]},
            "stopped_at": {"type": ["string", "null"]}}},
    "Report": {"type": "object", "description": "results or divergence report"},
}


def _action(summary: str, reason: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "security": ADMIN, "parameters": [EXPERIMENT_ID],
        "responses": {"200": _json({"$ref": "#/components/schemas/Experiment"}),
                      **_errors(400, 401, 403, 404, 409)}}
    if reason:
        op["requestBody"] = REASON_BODY
    return {"post": op}


def _arm_action(summary: str) -> dict[str, Any]:
    op = _action(summary, reason=True)
    op["post"]["parameters"] = [EXPERIMENT_ID, ARM]
    return op


def _report(summary: str, *shares: str) -> dict[str, Any]:
    params = [EXPERIMENT_ID] + [
        {"name": name, "in": "query", "required": False,
         "schema": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}}
        for name in shares]
    return {"get": {"summary": summary, "security": ADMIN, "parameters": params,
                    "responses": {"200": _json({"$ref": "#/components/schemas/Report"}),
                                  **_errors(400, 401, 403, 404)}}}


# --- candidates (app/api/candidates.py) -------------------------------------------------------

SCHEMAS["Candidate"] = {
    "type": "object", "required": ["name", "version", "backend"],
    "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                   "description": {"type": "string"}, "backend": {"type": "string"},
                   "pipeline": {"type": "object"}, "artifacts": {"type": "string"},
                   "requirements": {"type": "object"}, "offline_results": {"type": "object"},
                   "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                   "retired_at": {"type": ["string", "null"]}}}
CANDIDATE = {"$ref": "#/components/schemas/Candidate"}
CANDIDATE_NAME = {"name": "name", "in": "path", "required": True,
                  "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
VERSION = {"name": "version", "in": "query", "required": False,
           "schema": {"type": "string", "minLength": 1, "maxLength": 50}}


def candidate_paths() -> dict[str, Any]:
    """List, register (multipart upload of a .tar.gz bundle), show and retire candidates."""
    return {
        "/v1/candidates": {
            "get": {"summary": "Registered candidates (retired ones left out)",
                    "security": ADMIN,
                    "responses": {"200": _json({"type": "object", "required": ["candidates"],
                                                "properties": {"candidates": {
                                                    "type": "array", "items": CANDIDATE}}}),
                                  **_errors(401, 403)}},
            "post": {"summary": "Register a bundle: a .tar.gz of its folder, in the field "
                                "'bundle'; a new name or a new version of one",
                     "security": ADMIN,
                     "requestBody": {"required": True, "content": {"multipart/form-data": {
                         "schema": {"type": "object", "required": ["bundle"],
                                    "additionalProperties": False,
                                    "properties": {"bundle": {"type": "string",
                                                              "format": "binary"}}}}}},
                     "responses": {"201": _json(CANDIDATE, "Registered"),
                                   **_errors(400, 401, 403, 409, 413),
                                   "411": _json(ERROR, "No Content-Length: chunked uploads "
                                                       "are refused unread")}}},
        "/v1/candidates/{name}": {"get": {
            "summary": "One candidate: the latest active version, or the version asked for",
            "security": ADMIN, "parameters": [CANDIDATE_NAME, VERSION],
            "responses": {"200": _json(CANDIDATE), **_errors(400, 401, 403, 404)}}},
        "/v1/candidates/{name}/retire": {"post": {
            "summary": "Retire every active version, or the version asked for; rows and files "
                       "stay for the experiments that ran them",
            "security": ADMIN, "parameters": [CANDIDATE_NAME, VERSION],
            "responses": {"200": _json({"type": "object", "required": ["retired"],
                                        "properties": {"retired": {"type": "array",
                                                                   "items": CANDIDATE}}}),
                          **_errors(400, 401, 403, 404)}}},
    }


OPERATION_IDS = {
    ("get", "/v1/candidates"): "listCandidates",
    ("post", "/v1/experiments"): "createExperiment",
    ("get", "/v1/experiments"): "listExperiments",
    ("get", "/v1/experiments/{experiment_id}"): "showExperiment",
    ("post", "/v1/experiments/{experiment_id}/start"): "startExperiment",
    ("post", "/v1/predict"): "predict",
    ("post", "/v1/corrections"): "correct",
    ("get", "/v1/experiments/{experiment_id}/results"): "experimentResults",
    ("get", "/v1/experiments/{experiment_id}/divergence"): "experimentDivergence",
}
# Whole bodies, not merged into generated ones, where the flow needs them exactly. (Predict
# takes JSON or multipart, so its link bodies are merged into a generated JSON one instead.)
_WHOLE = {"x-schemathesis": {"merge_body": False}}
_BY_ID = {"experiment_id": "$response.body#/id"}
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("get", "/v1/candidates", "200"): {
        "Predict": {"operationId": "predict", "requestBody": {
            "image_base64": SAMPLE_IMAGE, "unit_id": "flow-user"}}},
    ("post", "/v1/experiments", "201"): {
        "StartExperiment": {"operationId": "startExperiment", "parameters": _BY_ID},
        "ShowExperiment": {"operationId": "showExperiment", "parameters": _BY_ID},
        "ExperimentResults": {"operationId": "experimentResults", "parameters": _BY_ID}},
    ("post", "/v1/experiments/{experiment_id}/start", "200"): {
        "PredictInScope": {"operationId": "predict", "requestBody": {
            "image_base64": SAMPLE_IMAGE, "unit_id": "flow-user",
            "scope": "$response.body#/scope"}},
        "ExperimentResults": {"operationId": "experimentResults", "parameters": _BY_ID},
        "ExperimentDivergence": {"operationId": "experimentDivergence",
                                 "parameters": _BY_ID}},
    ("post", "/v1/predict", "200"): {
        # A fresh name and scope from the prediction id; both arms on the candidate that served.
        "CreateExperiment": {"operationId": "createExperiment", **_WHOLE, "requestBody": {
            "name": "flow-{$response.body#/prediction_id}",
            "scope": "flow-{$response.body#/prediction_id}",
            "arms": [{"name": "control", "candidate": "$response.body#/candidate",
                      "weight": 1, "control": True},
                     {"name": "treatment", "candidate": "$response.body#/candidate",
                      "weight": 1}]}},
        "CorrectPrediction": {"operationId": "correct", **_WHOLE, "requestBody": {
            "prediction_id": "$response.body#/prediction_id",
            "receipt": "$response.body#/receipt", "corrected_output": "x^{2}", "rating": 2}},
        "ExperimentResults": {"operationId": "experimentResults",
                              "parameters": {"experiment_id": "$response.body#/experiment_id"}}},
    ("post", "/v1/corrections", "202"): {
        "ListExperiments": {"operationId": "listExperiments"}},
    ("get", "/v1/experiments", "200"): {
        "ExperimentResults": {"operationId": "experimentResults",
                              "parameters": {"experiment_id":
                                             "$response.body#/experiments/0/id"}}},
}


def _finish(paths: dict[str, Any]) -> dict[str, Any]:
    """Operation ids and links; 400 (text that cannot be stored, JSON too deep) and 413 (body
    over the limit) can answer any request, so every operation documents them."""
    for path, item in paths.items():
        for method, op in item.items():
            if (method, path) in OPERATION_IDS:
                op["operationId"] = OPERATION_IDS[method, path]
            for code in ("400", "413"):
                op["responses"].setdefault(code, _errors(int(code))[code])
            for status, response in op["responses"].items():
                links = LINKS.get((method, path, status))
                if links:
                    response["links"] = links
    return paths


def openapi_document(paths_wanted: set[str] | None = None) -> dict[str, Any]:
    """The document; `paths_wanted` limits it to the routes an app really has."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": _json({"type": "object", "required": ["status"],
                          "properties": {"status": {"type": "string"}}})}}},
        "/readyz": {"get": {"summary": "Readiness of the store and the bus", "responses": {
            "200": _json({"type": "object"}),
            "503": _json({"type": "object"}, "Not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": _json({"type": "object"})}}},
        "/v1/predict": {"post": {
            "summary": "Predict the LaTeX of a formula image",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [{"name": "X-Abvoc-Force-Arm", "in": "header", "required": False,
                            "schema": {"type": "string"},
                            "description": "admin keys only: serve this arm"}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictJSON"},
                                     "example": {"image_base64": SAMPLE_IMAGE,
                                                 "unit_id": "user-42"}},
                "multipart/form-data": {
                    "schema": {"$ref": "#/components/schemas/PredictMultipart"}}}},
            "responses": {"200": _json({"$ref": "#/components/schemas/Prediction"}),
                          **_errors(400, 401, 403, 413, 503)}}},
        "/v1/corrections": {"post": {
            "summary": "Correct a prediction (voice of the customer)",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 128}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CorrectionRequest"}}}},
            "responses": {"202": _json({"$ref": "#/components/schemas/CorrectionAccepted"},
                                       "Accepted"),
                          **_errors(400, 401, 403, 404, 409, 413)}}},
        "/v1/experiments": {
            "get": {"summary": "List experiments", "security": ADMIN,
                    "parameters": [{"name": "status", "in": "query", "required": False,
                                    "schema": {"type": "string", "enum": [
                                        "draft", "running", "paused", "killed", "stopped"]}}],
                    "responses": {"200": _json({"type": "object", "required": ["experiments"],
                                                "properties": {"experiments": {
                                                    "type": "array", "items": {
                                                        "$ref": "#/components/schemas/Experiment"}
                                                }}}),
                                  **_errors(400, 401, 403)}},
            "post": {"summary": "Create an experiment (draft)", "security": ADMIN,
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/ExperimentSpec"}}}},
                     "responses": {"201": _json({"$ref": "#/components/schemas/Experiment"},
                                                "Created"),
                                   **_errors(400, 401, 403, 409)}}},
        "/v1/experiments/{experiment_id}": {"get": {
            "summary": "Show an experiment", "security": ADMIN, "parameters": [EXPERIMENT_ID],
            "responses": {"200": _json({"$ref": "#/components/schemas/Experiment"}),
                          **_errors(401, 403, 404)}}},
        "/v1/experiments/{experiment_id}/start": _action("Start (take the scope)"),
        "/v1/experiments/{experiment_id}/pause": _action("Pause: all traffic to control", True),
        "/v1/experiments/{experiment_id}/resume": _action("Resume after pause or kill"),
        "/v1/experiments/{experiment_id}/kill": _action("Kill switch: all to control", True),
        "/v1/experiments/{experiment_id}/stop": _action("Stop for good"),
        "/v1/experiments/{experiment_id}/advance": _action("Advance the canary one step"),
        "/v1/experiments/{experiment_id}/arms/{arm}/pause": _arm_action("Pause one arm"),
        "/v1/experiments/{experiment_id}/arms/{arm}/resume": _arm_action("Resume one arm"),
        "/v1/experiments/{experiment_id}/results": _report("Online results and statistics"),
        "/v1/experiments/{experiment_id}/divergence": _report("Offline-vs-online divergence",
                                                              "alpha", "tolerance"),
    }
    paths.update(candidate_paths())
    paths = _finish(paths)
    if paths_wanted is not None:
        paths = {p: v for p, v in paths.items() if p in paths_wanted}
    return {
        "openapi": "3.1.0",
        "info": {"title": "abvoc", "version": "1",
                 "description": "Online A/B evaluation and voice-of-customer feedback"},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"}}},
    }
