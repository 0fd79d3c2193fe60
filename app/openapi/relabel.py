"""The relabeling routes (app/api/relabel.py): the annotators' queue, review, agreement, rules."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ADMIN, SCHEMAS, error_responses, json_response
from core.ids import MAX_ROW_ID
from core.relabel import MAX_QUOTA, MAX_STAGE_NAME, PURPOSES, REASONS, STAGE_PREFIX
from feedback.annotation import MAX_LEASE_S, STATUSES

STR = {"type": "string"}
STR_OR_NULL = {"type": ["string", "null"]}
NUM_OR_NULL = {"type": ["number", "null"]}
QUEUE = {"type": "string", "minLength": 1, "maxLength": 100,
         "description": f"a relabel queue: one of {', '.join(PURPOSES)}, or {STAGE_PREFIX}<stage> "
                        f"(a stage dataset's name of 1 to {MAX_STAGE_NAME} characters); any "
                        "other name is a 400 that lists these"}
ITEM_ID = {"name": "item_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}}
QUEUE_PARAM = {"name": "queue", "in": "query", "required": False, "schema": QUEUE}
SCOPE_PARAMS = [
    {"name": "experiment_id", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}},
    {"name": "candidate", "in": "query", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": 100}}]
RATE = {"type": "number", "minimum": 0, "maximum": 1}
TYPED = {"description": "a value of the output type: a string (label, text, latex), a number "
                        "(number), any JSON value (json); null when there is none. Sent back as "
                        "a label as it is"}
ANSWER = {
    "output": {"description": "the answer as a value of the output type: a string (label, text, "
                              "latex), a number (number), any JSON value (json); null when the "
                              "candidate failed to answer, whatever the output type"},
    "failed": {"type": "boolean", "description": "the candidate failed to answer (output is "
                                                 "null): there is no answer to accept"}}

SCHEMAS["RelabelItemView"] = {
    "type": "object",
    "required": ["id", "queue", "status", "priority", "reasons", "output_type", "classes",
                 "input", "served", "shadows", "correction", "label"],
    "properties": {
        "id": {"type": "integer"}, "queue": STR, "status": {"enum": list(STATUSES)},
        "priority": {"type": "number"}, "reasons": {"type": "array", "items": STR},
        "labels_needed": {"type": "integer"}, "labels_done": {"type": "integer"},
        "lease": {"type": ["object", "null"]}, "prediction_id": STR,
        "experiment_id": {"type": ["integer", "null"]}, "candidate": STR_OR_NULL,
        "slice": STR_OR_NULL, "output_type": STR, "classes": {"type": "array", "items": STR},
        "schema": {"type": ["object", "null"]},
        "input": {"type": ["object", "null"], "description": "{kind: image, media_type, "
                  "data_base64} (a PNG) or {kind: tensors, tensors: [V2 tensors]}; null when "
                  "the input was not kept"},
        "served": {"type": ["object", "null"], "properties": ANSWER},
        "shadows": {"type": "array", "items": {"type": "object", "properties": ANSWER}},
        "correction": {"type": ["object", "null"], "properties": {"corrected_output": TYPED},
                       "description": "the first correction: the prediction's truth until a "
                                      "label says otherwise"},
        "later_corrections": {"type": "array", "items": {
            "type": "object", "properties": {"corrected_output": TYPED}},
            "description": "corrections sent after the first (at most 20), oldest first"},
        "other_corrections": {"type": "array", "items": {
            "type": "object", "properties": {"prediction_id": STR, "corrected_output": TYPED}},
            "description": "corrections of the same input on other predictions of its type "
                           "(at most 20, oldest first): the label is their truth too"},
        "label": TYPED, "note": STR_OR_NULL}}
VIEW = {"$ref": "#/components/schemas/RelabelItemView"}
ACT = {"type": "object", "required": ["item_id", "status"],
       "properties": {"item_id": {"type": "integer"}, "status": {"enum": list(STATUSES)},
                      "label": STR, "verdict": {"enum": ["accept", "reject", None]},
                      "settled": {"type": "array", "items": {"type": "integer"},
                                  "description": "resolve: the input's done items in other "
                                                 "queues given the resolved label"}}}
SCHEMAS["RelabelRules"] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "corrections": {"type": "boolean"}, "shadow_disagreements": {"type": "boolean"},
        "low_confidence_below": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "divergent_slice_rate": RATE, "audit_rate": RATE, "second_annotator_share": RATE,
        "shadow_number_tolerance": RATE,
        "stage_datasets": {"type": "array", "maxItems": 20,
                           "items": {"type": "string", "minLength": 1, "maxLength": 50}},
        "quotas": {"type": "object", "additionalProperties": False,
                   "properties": {p: {"type": "integer", "minimum": 0, "maximum": MAX_QUOTA}
                                  for p in PURPOSES}},
        "weights": {"type": "object", "additionalProperties": False,
                    "properties": {r: {"type": "number", "minimum": 0, "maximum": 1000}
                                   for r in REASONS}}}}
RULES_VIEW = {"type": "object", "required": ["scope", "from", "set_here", "rules"],
              "properties": {"scope": STR, "from": STR,
                             "set_here": {"type": "array", "items": STR, "description":
                                          "the fields this scope sets itself; the others "
                                          "follow the default, then the built-in values"},
                             "rules": {"$ref": "#/components/schemas/RelabelRules"}}}


def _body(properties: dict[str, Any], required: list[str], needed: bool = True
          ) -> dict[str, Any]:
    return {"required": needed, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": required,
        "properties": properties}}}}


def _item_action(summary: str, body: dict[str, Any] | None, admin: bool = False
                 ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": ADMIN, "parameters": [ITEM_ID],
                          "responses": {"200": json_response(ACT),
                                        **error_responses(400, 401, 403, 404, 409)}}
    if body is not None:
        op["requestBody"] = body
    if admin:
        op["description"] = "admin keys only"
    return {"post": op}


def relabel_paths() -> dict[str, Any]:
    return {
        "/v1/relabel/queues": {"get": {
            "summary": "Items per queue and status", "security": ADMIN,
            "responses": {"200": json_response({"type": "object", "required": ["queues"],
                                                "properties": {"queues": {"type": "array"}}}),
                          **error_responses(401, 403)}}},
        "/v1/relabel/claim": {"post": {
            "summary": "Lease the most urgent item this annotator may take (null: none left); "
                       "the lease expires after lease_s seconds and the item returns",
            "security": ADMIN,
            "requestBody": _body({"queue": {**QUEUE, "type": ["string", "null"],
                                            "description": "null or left out: any queue"},
                                  "lease_s": {
                "type": "integer", "minimum": 1, "maximum": MAX_LEASE_S}}, [], False),
            "responses": {"200": json_response({"type": "object", "required": ["item"],
                                                "properties": {"item": {"oneOf": [
                                                    VIEW, {"type": "null"}]}}}),
                          **error_responses(400, 401, 403)}}},
        "/v1/relabel/items": {"get": {
            "summary": "Items by status (default: review), most urgent first, with their acts",
            "security": ADMIN,
            "parameters": [
                {"name": "status", "in": "query", "required": False,
                 "schema": {"enum": list(STATUSES)}}, QUEUE_PARAM,
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {"200": json_response({"type": "object", "required": ["items"],
                                                "properties": {"items": {"type": "array"}}}),
                          **error_responses(400, 401, 403)}}},
        "/v1/relabel/items/{item_id}": {"get": {
            "summary": "One item as an annotator sees it", "security": ADMIN,
            "parameters": [ITEM_ID],
            "responses": {"200": json_response(VIEW), **error_responses(401, 403, 404)}}},
        "/v1/relabel/items/{item_id}/label": _item_action(
            "Label a leased item (a value of the candidate's output type)",
            _body({"label": {}}, ["label"])),
        "/v1/relabel/items/{item_id}/skip": _item_action(
            "Give a leased item back; it is not offered to this annotator again",
            _body({}, [], False)),
        "/v1/relabel/items/{item_id}/flag": _item_action(
            "Flag a leased item for an admin",
            _body({"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
                  ["reason"])),
        "/v1/relabel/items/{item_id}/resolve": _item_action(
            "Resolve an item in review or flagged with the admin's label",
            _body({"label": {}}, ["label"]), admin=True),
        "/v1/relabel/agreement": {"get": {
            "summary": "Exact agreement and Cohen's kappa (accept/reject of the customer's "
                       "correction) over items with two labels", "security": ADMIN,
            "parameters": [QUEUE_PARAM],
            "responses": {"200": json_response({"type": "object", "required": [
                "items_with_two_labels", "exact_agreement", "kappa"], "properties": {
                "items_with_two_labels": {"type": "integer"},
                "exact_agreement": NUM_OR_NULL, "kappa": NUM_OR_NULL,
                "kappa_se": NUM_OR_NULL}}), **error_responses(400, 401, 403)}}},
        "/v1/relabel/rules": {
            "get": {"summary": "The enqueue rules that apply to an experiment, a candidate, or "
                               "by default", "security": ADMIN, "parameters": SCOPE_PARAMS,
                    "responses": {"200": json_response(RULES_VIEW),
                                  **error_responses(400, 401, 403, 404)}},
            "put": {"summary": "Set (part of) the enqueue rules of a scope", "security": ADMIN,
                    "parameters": SCOPE_PARAMS,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/RelabelRules"}}}},
                    "responses": {"200": json_response(RULES_VIEW),
                                  **error_responses(400, 401, 403, 404)}}},
    }
