"""The schemas of POST /v1/pages: a page in, each formula's box, LaTeX, id and receipt out."""

from __future__ import annotations

_SCOPE = {"type": ["string", "null"], "maxLength": 100}
PAGES_JSON = {
    "type": "object", "required": ["image_base64", "unit_id"], "additionalProperties": False,
    "properties": {"image_base64": {"type": "string", "description": "PNG or JPEG, base64"},
                   "unit_id": {"type": "string", "minLength": 1, "maxLength": 200},
                   "page_scope": _SCOPE, "formula_scope": _SCOPE, "slice": _SCOPE}}
PAGES_MULTIPART = {
    "type": "object", "required": ["image", "unit_id"], "additionalProperties": False,
    "properties": {"image": {"type": "string", "format": "binary"},
                   "unit_id": {"type": "string", "minLength": 1, "maxLength": 200},
                   "page_scope": {"type": "string", "maxLength": 100},
                   "formula_scope": {"type": "string", "maxLength": 100},
                   "slice": {"type": "string", "maxLength": 100}}}
_BOX = {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4}
PAGE_READING = {
    "type": "object", "required": ["page", "boxes", "formulas"],
    "properties": {
        "page": {"type": "object", "required": ["prediction_id", "receipt"],
                 "properties": {"prediction_id": {"type": "string"},
                                "receipt": {"type": "string"},
                                "confidence": {"type": ["number", "null"]}}},
        "boxes": {"type": "array", "items": {"type": "object"}},
        "formulas": {"type": "array", "items": {
            "type": "object", "required": ["box", "score"],
            "properties": {"box": _BOX, "score": {"type": "number"},
                           "prediction_id": {"type": "string"}, "output": {"type": "string"},
                           "receipt": {"type": "string"},
                           "confidence": {"type": ["number", "null"]},
                           "error": {"type": "string"}, "status": {"type": "integer"}}}}}}
