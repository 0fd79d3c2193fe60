"""The Open Inference Protocol (V2 REST) routes of app/api/v2.py."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ERROR, error_responses, json_response

V2_TENSOR = {
    "type": "object", "required": ["name", "datatype", "shape", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "datatype": {"enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                              "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"description": "row-major values, flat or nested; numbers as the datatype "
                                "holds them (integers for INT/UINT, true/false for BOOL, "
                                "within its range); BYTES as strings, base64 when "
                                "parameters.content_type is 'base64'"},
        "parameters": {"type": "object"}},
}
SCOPE = {"name": "scope", "in": "path", "required": True,
         "description": "the experiment's traffic scope (the V2 model name)",
         "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
# No `versions` in the model metadata: a scope has none a client may request.
METADATA_PARAMETERS = ("admin keys only: `candidate` and `candidate_version`, what the control "
                       "arm (or the default) serves; the scope has no versions of its own")


def v2_paths() -> dict[str, Any]:
    """The Open Inference Protocol (V2 REST) routes: the model name is the traffic scope."""
    failed = {code: json_response(ERROR, text) for code, text in (
        ("500", "The candidate itself failed on this input (a local stage raised); recorded as "
                "an error, details carry its prediction_id and receipt"),
        ("502", "The candidate (a remote server) failed; recorded as an error"),
        ("504", "The candidate (a remote server) did not answer within its timeout"))}
    request_body = {
        "type": "object", "required": ["inputs"], "additionalProperties": False,
        "properties": {
            "id": {"type": ["string", "null"], "maxLength": 200},
            "model_name": {"type": ["string", "null"],
                           "description": "the URL's model, if given (KServe's client sends it)"},
            "model_version": {"type": ["string", "null"], "maxLength": 0,
                              "description": "empty: the router picks the version"},
            "parameters": {"type": ["object", "null"],
                           "description": "abvoc reads these; others (a client's own, e.g. "
                                          "timeout, priority, content_type) pass unread",
                           "properties": {
                               "unit_id": {"type": ["string", "null"], "maxLength": 200},
                               "slice": {"type": ["string", "null"], "minLength": 1,
                                         "maxLength": 100},
                               "binary_data_output": {
                                   "type": ["boolean", "null"],
                                   "description": "every output as binary data"}}},
            "inputs": {"type": "array", "minItems": 1, "items": V2_TENSOR},
            "outputs": {"type": ["array", "null"], "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"},
                               "parameters": {"type": ["object", "null"],
                                              "additionalProperties": False,
                                              "properties": {"binary_data": {
                                                  "type": ["boolean", "null"]},
                                                  "content_type": {
                                                      "enum": ["str", "base64", None],
                                                      "description": "BYTES in JSON: plain "
                                                      "UTF-8 strings (the default) or "
                                                      "base64"}}}}}}}}
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
               "schema": {"type": "string", "minLength": 1, "maxLength": 200},
               "description": "the unit (user, session), in place of parameters.unit_id "
                              "or the same id (two different ids are a 400); "
                              "required except where the scope's experiment has unit "
                              "'request'; ASCII only (else in parameters.unit_id)"},
              {"name": "X-Abvoc-Force-Arm", "in": "header", "required": False,
               "schema": {"type": "string", "minLength": 1},
               "description": "admin keys only: serve this arm (its name percent-encoded as "
                              "UTF-8 where not ASCII)"},
              {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
               "schema": {"type": "integer", "minimum": 1},
               "description": "binary tensor data extension: the body's first N bytes are the "
                              "JSON request; the raw data of each input with "
                              "parameters.binary_data_size follows, in order"}]
    binary = {"schema": {"type": "string", "format": "binary",
                         "description": "the binary tensor data extension: a JSON header (its "
                                        "length in Inference-Header-Content-Length), then raw "
                                        "little-endian tensor data; BYTES values each after a "
                                        "4-byte length"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "a model version; a scope has none of its own"}
    versioned = {"summary": "The protocol's versioned form: always 404, saying to leave the "
                            "client's model version empty (the router picks the candidate and "
                            "its version for each unit)",
                 "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE, version],
                 "responses": error_responses(400, 401, 403, 404)}
    answered = json_response(response)
    answered["content"]["application/octet-stream"] = binary
    return {
        "/v2": {"get": {"summary": "V2 server metadata: name, version and the protocol "
                                   "extensions served (binary tensor data)", "responses": {
            "200": json_response({"type": "object", "required": ["name", "version", "extensions"],
                                  "properties": {"name": {"type": "string"},
                                                 "version": {"type": "string"},
                                                 "extensions": {"type": "array",
                                                                "items": {"type": "string"}}}})}}},
        "/v2/health/live": {"get": {"summary": "V2 liveness", "responses": {
            "200": json_response({"type": "object", "required": ["live"],
                          "properties": {"live": {"type": "boolean"}}})}}},
        "/v2/health/ready": {"get": {"summary": "V2 readiness: the store records predictions",
                                     "responses": {"200": json_response({
                                         "type": "object", "required": ["ready"],
                                         "properties": {"ready": {"type": "boolean"}}}),
                                         **error_responses(503)}}},
        "/v2/models/{scope}": {"get": {
            "summary": "V2 model metadata: the inputs and output of the candidate the scope's "
                       "control arm (or the default) serves",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE],
            "responses": {"200": json_response({"type": "object", "required": ["name", "inputs",
                                                                       "outputs"],
                                        "properties": {"name": {"type": "string"},
                                                       "platform": {"type": "string"},
                                                       "inputs": {"type": "array"},
                                                       "outputs": {"type": "array"},
                                                       "parameters": {
                                                           "type": "object",
                                                           "description": METADATA_PARAMETERS}}}),
                          **error_responses(400, 401, 403, 404, 503)}}},
        "/v2/models/{scope}/ready": {"get": {
            "summary": "The scope's candidate is loaded (a remote one: its server is ready)",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE],
            "responses": {"200": json_response({"type": "object", "required": ["name", "ready"],
                                        "properties": {"name": {"type": "string"},
                                                       "ready": {"type": "boolean"}}}),
                          **error_responses(400, 401, 403, 404, 503)}}},
        "/v2/models/{scope}/infer": {"post": {
            "summary": "V2 inference: the router picks the candidate for the unit; the answer "
                       "carries the prediction id and the receipt to correct it",
            "security": [{"apiKey": []}, {"bearer": []}], "parameters": [SCOPE, *header],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": request_body},
                "application/octet-stream": binary}},
            "responses": {"200": answered,
                          **error_responses(400, 401, 403, 404, 413, 503),
                          **failed}}},
        "/v2/models/{scope}/versions/{version}": {"get": versioned},
        "/v2/models/{scope}/versions/{version}/ready": {"get": versioned},
        "/v2/models/{scope}/versions/{version}/infer": {"post": {
            **versioned, "responses": error_responses(400, 401, 403, 404, 413)}},
    }
