"""The weekly evaluation reports' routes: the list, and each week's HTML and PDF."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ADMIN, error_responses, json_response
from evaluation.weekly import WEEK_PATTERN

WEEK = {"name": "week", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": f"^{WEEK_PATTERN}$"},
        "description": "ISO week, e.g. 2026-W48", "example": "2026-W48"}
LISTING = {"type": "object", "required": ["reports"], "properties": {"reports": {
    "type": "array", "items": {"type": "object", "required": ["week", "files"], "properties": {
        "week": {"type": "string"},
        "files": {"type": "object", "description": "format -> size in bytes",
                  "additionalProperties": {"type": "integer"}}}}}}}


def _download(media: str, what: str) -> dict[str, Any]:
    return {"get": {"summary": f"Download a week's report ({what})", "security": ADMIN,
                    "parameters": [WEEK],
                    "responses": {"200": {"description": what, "content": {
                        media: {"schema": {"type": "string"}}}},
                        **error_responses(400, 401, 403, 404)}}}


def weekly_report_paths() -> dict[str, Any]:
    return {
        "/v1/reports": {"get": {"summary": "List the weekly evaluation reports written",
                                "security": ADMIN,
                                "responses": {"200": json_response(LISTING),
                                              **error_responses(401, 403)}}},
        "/v1/reports/{week}.html": _download("text/html", "self-contained HTML"),
        "/v1/reports/{week}.pdf": _download("application/pdf", "PDF"),
    }
