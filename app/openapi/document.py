"""The whole document, served at /openapi.json (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

from app.openapi.candidates import candidate_paths
from app.openapi.links import finish
from app.openapi.outcomes import outcome_paths
from app.openapi.pages import PAGE_READING, PAGES_JSON, PAGES_MULTIPART
from app.openapi.parts import (
    ADMIN,
    EXPERIMENT_ID,
    SAMPLE_IMAGE,
    SCHEMAS,
    UNIT_HEADER_PARAM,
    action,
    arm_action,
    csv_report,
    divergence_csv_report,
    error_responses,
    json_response,
    report,
)
from app.openapi.relabel import relabel_paths
from app.openapi.reports import REPORT_SCHEMAS
from app.openapi.v2 import v2_paths
from app.openapi.weekly_reports import weekly_report_paths


def openapi_document(paths_wanted: set[str] | None = None) -> dict[str, Any]:
    """The document; `paths_wanted` limits it to the routes an app really has."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": json_response({"type": "object", "required": ["status"],
                          "properties": {"status": {"type": "string"}}})}}},
        "/readyz": {"get": {
            "summary": "Readiness: the store, the bus, the outbox's age and the parts that keep "
                       "heartbeats (relay, worker; those named by ABVOC_EXPECT_PARTS are down "
                       "until their first beat)",
            "responses": {"200": json_response({"type": "object"}),
                          "503": json_response({"type": "object"}, "Not ready")}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics: with ABVOC_METRICS_TOKEN set, only for 'Authorization: "
                       "Bearer <token>'; in production without it, for admin keys",
            "responses": {"200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": json_response({"type": "object"}, "No or a wrong token (or key)")}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": json_response({"type": "object"})}}},
        "/v1/predict": {"post": {
            "summary": "Predict the LaTeX of a formula image",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [UNIT_HEADER_PARAM,
                           {"name": "X-Abvoc-Force-Arm", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1},
                            "description": "admin keys only: serve this arm (its name "
                                           "percent-encoded as UTF-8 where not ASCII)"}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictJSON"},
                                     "example": {"image_base64": SAMPLE_IMAGE,
                                                 "unit_id": "user-42"}},
                "multipart/form-data": {
                    "schema": {"$ref": "#/components/schemas/PredictMultipart"}}}},
            "responses": {"200": json_response({"$ref": "#/components/schemas/Prediction"}),
                          **error_responses(400, 401, 403, 404, 413, 500, 503, 504)}}},
        "/v1/pages": {"post": {
            "summary": "Read a page of formulas: extraction, then OCR of each formula",
            "description": "The page is routed on page_scope to an extraction candidate, each "
                           "formula on formula_scope to an OCR candidate; every one is a "
                           "prediction with its own id and receipt. Report a missed or split "
                           "formula as a correction of the page's prediction (its boxes as "
                           "they should be).",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [UNIT_HEADER_PARAM],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": PAGES_JSON},
                "multipart/form-data": {"schema": PAGES_MULTIPART}}},
            "responses": {"200": json_response(PAGE_READING),
                          **error_responses(400, 401, 403, 404, 409, 413, 500, 502, 503, 504)}}},
        "/v1/corrections": {"post": {
            "summary": "Correct a prediction (voice of the customer)",
            "security": [{"apiKey": []}, {"bearer": []}],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 128}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CorrectionRequest"}}}},
            "responses": {"202": json_response({"$ref": "#/components/schemas/CorrectionAccepted"},
                                       "Accepted"),
                          **error_responses(400, 401, 403, 404, 409, 413, 503)}}},
        "/v1/experiments": {
            "get": {"summary": "List experiments", "security": ADMIN,
                    "parameters": [{"name": "status", "in": "query", "required": False,
                                    "schema": {"type": "string", "enum": [
                                        "draft", "running", "paused", "killed", "stopped"]}}],
                    "responses": {"200": json_response({"type": "object",
                                                        "required": ["experiments"],
                                                "properties": {"experiments": {
                                                    "type": "array", "items": {
                                                        "$ref": "#/components/schemas/Experiment"}
                                                }}}),
                                  **error_responses(400, 401, 403)}},
            "post": {"summary": "Create an experiment (draft)", "security": ADMIN,
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/ExperimentSpec"}}}},
                     "responses": {"201": json_response({"$ref": "#/components/schemas/Experiment"},
                                                "Created"),
                                   **error_responses(400, 401, 403, 409)}}},
        "/v1/experiments/{experiment_id}": {"get": {
            "summary": "Show an experiment", "security": ADMIN, "parameters": [EXPERIMENT_ID],
            "responses": {"200": json_response({"$ref": "#/components/schemas/Experiment"}),
                          **error_responses(401, 403, 404)}}},
        "/v1/experiments/{experiment_id}/start": action("Start (take the scope)"),
        "/v1/experiments/{experiment_id}/pause": action("Pause: all traffic to control", True),
        "/v1/experiments/{experiment_id}/resume": action("Resume after pause or kill"),
        "/v1/experiments/{experiment_id}/kill": action("Kill switch: all to control", True),
        "/v1/experiments/{experiment_id}/stop": action("Stop for good"),
        "/v1/experiments/{experiment_id}/advance": action("Advance the canary one step"),
        "/v1/experiments/{experiment_id}/arms/{arm}/pause": arm_action("Pause one arm", True),
        "/v1/experiments/{experiment_id}/arms/{arm}/resume": arm_action("Resume one arm"),
        "/v1/experiments/{experiment_id}/results": report("Online results and statistics",
                                                           "ResultsReport"),
        "/v1/experiments/{experiment_id}/results.csv": csv_report(
            "Online results' comparisons as CSV"),
        "/v1/experiments/{experiment_id}/divergence": report("Offline-vs-online divergence",
                                                              "DivergenceReport",
                                                              "alpha", "tolerance"),
        "/v1/experiments/{experiment_id}/divergence.csv": divergence_csv_report(
            "Offline-vs-online slice rows or findings as CSV"),
    }
    paths.update(candidate_paths())
    paths.update(outcome_paths())
    paths.update(v2_paths())
    paths.update(relabel_paths())
    paths.update(weekly_report_paths())
    paths = finish(paths)
    if paths_wanted is not None:
        paths = {p: v for p, v in paths.items() if p in paths_wanted}
    return {
        "openapi": "3.1.0",
        "info": {"title": "abvoc", "version": "1",
                 "description": "Online A/B evaluation and voice-of-customer feedback"},
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **REPORT_SCHEMAS},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"}}},
    }
