"""The OpenAPI 3 document for every endpoint, served at /openapi.json (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input; the message says what to fix", 401: "No valid API key",
            403: "The key lacks the scope, or the receipt does not match",
            404: "Not found", 409: "Conflicts with the current state",
            413: "Too large", 503: "Not ready or the candidate failed"}
    return {str(c): {"description": text[c],
                     "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


EXPERIMENT_ID = {"name": "experiment_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
ARM = {"name": "arm", "in": "path", "required": True, "schema": {"type": "string"}}
ADMIN = [{"apiKey": []}, {"bearer": []}]
REASON_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}}}}}

ARM_SCHEMA = {
    "type": "object", "required": ["name", "candidate", "weight"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                   "candidate": {"type": "string", "minLength": 1},
                   "weight": {"type": "number", "minimum": 0},
                   "control": {"type": "boolean"}},
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"],
              "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                             "details": {}}},
    "PredictJSON": {
        "type": "object", "required": ["image_base64", "unit_id"], "additionalProperties": False,
        "properties": {
            "image_base64": {"type": "string", "description": "PNG or JPEG, base64"},
            "unit_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "scope": {"type": "string", "maxLength": 100},
            "slice": {"type": "string", "maxLength": 100}}},
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
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "scope": {"type": "string", "minLength": 1, "maxLength": 100},
            "unit": {"type": "string", "enum": ["user", "session", "request"]},
            "salt": {"type": "string", "maxLength": 64},
            "arms": {"type": "array", "minItems": 2, "items": ARM_SCHEMA},
            "shadows": {"type": "array", "items": {
                "type": "object", "required": ["candidate"],
                "properties": {"candidate": {"type": "string"}}}},
            "canary": {"type": "object", "properties": {
                "treatment": {"type": "string"},
                "steps": {"type": "array", "items": {"type": "number"}},
                "advance_after_s": {"type": ["number", "null"]},
                "advance_after_n": {"type": ["number", "null"]}}},
            "guardrails": {"type": "object", "properties": {
                "p99_latency_ms": {"type": ["number", "null"]},
                "error_rate": {"type": ["number", "null"]},
                "correction_rate": {"type": ["number", "null"]},
                "min_samples": {"type": "integer"}}},
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


V2_TENSOR = {
    "type": "object", "required": ["name", "datatype", "shape", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "datatype": {"enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                              "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"description": "row-major values; BYTES as strings, base64 when "
                                "parameters.content_type is 'base64'"},
        "parameters": {"type": "object"}},
}
SCOPE = {"name": "scope", "in": "path", "required": True,
         "description": "the experiment's traffic scope (the V2 model name)",
         "schema": {"type": "string", "minLength": 1, "maxLength": 100}}


def v2_paths() -> dict[str, Any]:
    """The Open Inference Protocol (V2 REST) routes: the model name is the traffic scope."""
    failed = {code: _json(ERROR, text) for code, text in (
        ("502", "The candidate (a remote server) failed; recorded as an error"),
        ("504", "The candidate (a remote server) did not answer within its timeout"))}
    request_body = {
        "type": "object", "required": ["inputs"], "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
            "parameters": {"type": ["object", "null"], "additionalProperties": False,
                           "properties": {
                               "unit_id": {"type": ["string", "null"], "maxLength": 200},
                               "slice": {"type": ["string", "null"], "minLength": 1,
                                         "maxLength": 100}}},
            "inputs": {"type": "array", "minItems": 1, "items": V2_TENSOR},
            "outputs": {"type": ["array", "null"], "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}}}}}}
    response = {
        "type": "object", "required": ["model_name", "outputs", "parameters"],
        "properties": {
            "model_name": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "parameters": {"type": "object", "required": ["prediction_id", "receipt"],
                           "properties": {"prediction_id": {"type": "string"},
                                          "receipt": {"type": "string"},
                                          "candidate": {"type": "string"},
                                          "arm": {"type": ["string", "null"]},
                                          "experiment_id": {"type": ["integer", "null"]},
                                          "latency_ms": {"type": "number"}}}}}
    header = [{"name": "X-Abvoc-Unit-Id", "in": "header", "required": False,
               "schema": {"type": "string"},
               "description": "the unit (user, session), when not in parameters.unit_id"},
              {"name": "X-Abvoc-Force-Arm", "in": "header", "required": False,
               "schema": {"type": "string"}, "description": "admin keys only: serve this arm"}]
    return {
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": {
            "200": _json({"type": "object", "required": ["live"],
                          "properties": {"live": {"type": "boolean"}}})}}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness: the store records predictions",
                                     "responses": {"200": _json({
                                         "type": "object", "required": ["ready"],
                                         "properties": {"ready": {"type": "boolean"}}}),
                                         **_errors(503)}}},
        "/v2/models/{scope}": {"get": {
            "summary": "V2 model metadata: the inputs and output of the candidate the scope's "
                       "control arm (or the default) serves",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE],
            "responses": {"200": _json({"type": "object", "required": ["name", "inputs",
                                                                       "outputs"],
                                        "properties": {"name": {"type": "string"},
                                                       "platform": {"type": "string"},
                                                       "inputs": {"type": "array"},
                                                       "outputs": {"type": "array"}}}),
                          **_errors(400, 401, 403, 404, 503)}}},
        "/v2/models/{scope}/ready": {"get": {
            "summary": "The scope's candidate is loaded (a remote one: its server is ready)",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE],
            "responses": {"200": _json({"type": "object", "required": ["name", "ready"],
                                        "properties": {"name": {"type": "string"},
                                                       "ready": {"type": "boolean"}}}),
                          **_errors(400, 401, 403, 404, 503)}}},
        "/v2/models/{scope}/infer": {"post": {
            "summary": "V2 inference: the router picks the candidate for the unit; the answer "
                       "carries the prediction id and the receipt to correct it",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE, *header],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": request_body}}},
            "responses": {"200": _json(response), **_errors(400, 401, 403, 404, 413, 503),
                          **failed}}},
    }


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
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictJSON"}},
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
    paths.update(v2_paths())
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
