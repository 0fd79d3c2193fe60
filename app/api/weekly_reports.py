"""GET /v1/reports and /v1/reports/<name>.html|.pdf: the weekly evaluation reports written by
`abvoc report` and by the schedule in `abvoc up`, by week (2026-W48) or week so far
(2026-W49-to-date, `abvoc report --to-date`)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, send_file

from app.auth import require
from dashboards.report import CSP, list_reports, report_file, reports_dir

bp = Blueprint("weekly_reports", __name__)
MEDIA = {"html": "text/html", "pdf": "application/pdf"}


def _folder():  # noqa: ANN202
    return reports_dir(current_app.extensions["abvoc"].settings.data_dir)


@bp.get("/v1/reports")
@require("admin")
def listing():  # noqa: ANN201
    return jsonify({"reports": list_reports(_folder())})


@bp.get("/v1/reports/<name>.<any(html, pdf):fmt>")
@require("admin")
def download(name: str, fmt: str):  # noqa: ANN201
    path = report_file(_folder(), name, fmt)
    response = send_file(path, mimetype=MEDIA[fmt], as_attachment=fmt == "pdf",
                         download_name=path.name, max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    return response
