"""The candidate routes (app/api/candidates.py): list, upload a bundle, show, retire."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ADMIN, ERROR, SCHEMAS, error_responses, json_response

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
# Where a version just retired is still served: an experiment running now keeps it until it stops.
STILL_SERVED = {"type": "array", "items": {"type": "object", "properties": {
    "candidate": {"type": "string"}, "version": {"type": "string"},
    "experiment_id": {"type": "integer"}, "name": {"type": "string"},
    "status": {"type": "string"}, "as": {"type": "string"}}}}
CANDIDATE_NAME = {"name": "name", "in": "path", "required": True,
                  "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
VERSION = {"name": "version", "in": "query", "required": False,
           "schema": {"type": "string", "minLength": 1, "maxLength": 50}}

ALL_VERSIONS = {"name": "all", "in": "query", "required": False,
                "description": "1 (true, yes): retired versions too, as `abvoc candidates list "
                               "--all`",
                "schema": {"type": "string", "enum": ["", "1", "true", "yes", "0", "false", "no"]}}

CHECK_REMOTE = {"name": "check_remote", "in": "query", "required": False,
                "description": "false: register a [remote] candidate without asking its server "
                               "whether it serves the model ready (default true)",
                "schema": {"type": "boolean", "default": True}}


def candidate_paths() -> dict[str, Any]:
    """List, register (multipart upload of a .tar.gz bundle), show and retire candidates."""
    return {
        "/v1/candidates": {
            "get": {"summary": "Registered candidates (retired ones left out); their offline "
                               "results without the per-class share maps, which "
                               "GET /v1/candidates/{name} shows",
                    "security": ADMIN, "parameters": [ALL_VERSIONS],
                    "responses": {"200": json_response({"type": "object",
                                                        "required": ["candidates"],
                                                "properties": {"candidates": {
                                                    "type": "array", "items": CANDIDATE}}}),
                                  **error_responses(401, 403)}},
            "post": {"summary": "Register a bundle: a .tar.gz of its folder, in the field "
                                "'bundle'; a new name or a new version of one",
                     "security": ADMIN, "parameters": [CHECK_REMOTE],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {
                         "schema": {"type": "object", "required": ["bundle"],
                                    "additionalProperties": False,
                                    "properties": {"bundle": {"type": "string",
                                                              "format": "binary"}}}}}},
                     "responses": {"201": json_response(CANDIDATE, "Registered"),
                                   **error_responses(400, 401, 403, 409, 413),
                                   "411": json_response(ERROR, "No Content-Length: chunked uploads "
                                                       "are refused unread")}}},
        "/v1/candidates/{name}": {"get": {
            "summary": "One candidate: the latest active version, or the version asked for",
            "security": ADMIN, "parameters": [CANDIDATE_NAME, VERSION],
            "responses": {"200": json_response(CANDIDATE), **error_responses(400, 401, 403, 404)}}},
        "/v1/candidates/{name}/retire": {"post": {
            "summary": "Retire every active version, or the version asked for; rows and files "
                       "stay for the experiments that ran them",
            "security": ADMIN, "parameters": [CANDIDATE_NAME, VERSION],
            "responses": {"200": json_response({"type": "object", "required": ["retired"],
                                        "properties": {"retired": {"type": "array",
                                                                   "items": CANDIDATE},
                                                       "still_served": STILL_SERVED}}),
                          **error_responses(400, 401, 403, 404)}}},
    }
