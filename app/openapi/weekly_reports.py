"""The weekly evaluation reports' routes: the list, and each report's HTML and PDF (a week's, or
the current week's so far)."""

from __future__ import annotations

from typing import Any

from app.openapi.parts import ADMIN, error_responses, json_response
from evaluation.weekly import TO_DATE, WEEK_PATTERN

NAME = {"name": "name", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": f"^{WEEK_PATTERN}({TO_DATE})?$"},
        "description": "ISO week, e.g. 2026-W48, or a week so far, e.g. 2026-W49-to-date (the "
                       "listing's `name`)", "example": "2026-W48"}
LISTING = {"type": "object", "required": ["reports"], "properties": {"reports": {
    "type": "array", "items": {"type": "object", "required": [
        "week", "name", "to_date", "written_at", "files"], "properties": {
        "week": {"type": "string"},
        "name": {"type": "string", "description": "what the download paths take"},
        "to_date": {"type": "boolean", "description": "the week so far (abvoc report --to-date)"},
        "written_at": {"type": "string", "format": "date-time"},
        "files": {"type": "object", "description": "format -> size in bytes",
                  "additionalProperties": {"type": "integer"}}}}}}}


def _download(media: str, what: str) -> dict[str, Any]:
    return {"get": {"summary": f"Download a week's report ({what})", "security": ADMIN,
                    "parameters": [NAME],
                    "responses": {"200": {"description": what, "content": {
                        media: {"schema": {"type": "string"}}}},
                        **error_responses(400, 401, 403, 404)}}}


def weekly_report_paths() -> dict[str, Any]:
    return {
        "/v1/reports": {"get": {"summary": "List the weekly evaluation reports written",
                                "security": ADMIN,
                                "responses": {"200": json_response(LISTING),
                                              **error_responses(401, 403)}}},
        "/v1/reports/{name}.html": _download("text/html", "self-contained HTML"),
        "/v1/reports/{name}.pdf": _download("application/pdf", "PDF"),
    }
