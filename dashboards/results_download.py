"""The Experiments page's CSV of the comparisons, served under the dashboard's prefix so the
login's session (not an API key) lets an admin download it: the same table as
``GET /v1/experiments/{id}/results.csv``, for the hours the page shows."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from dash import Dash
from flask import Response, request

from core.errors import AbvocError, Forbidden
from core.ids import MAX_ROW_ID
from core.times import parse_rfc3339
from dashboards import data
from dashboards.access import allowed
from evaluation.results_csv import comparisons_csv, download_name

ROLES = frozenset({"admin"})
PATH = "/dashboard/experiment-results"


def href(experiment_id: int, window: data.Window) -> str:
    """The download's address for the experiment and the page's hours."""
    hours = {k: v.isoformat() for k, v in (("since", window.since), ("until", window.until))
             if v is not None}
    return f"{PATH}/{experiment_id}.csv" + (f"?{urlencode(hours)}" if hours else "")


def _hour(name: str) -> datetime | None:
    raw = request.args.get(name)
    return None if raw is None else parse_rfc3339(raw, name)


def download(experiment_id: int) -> Response:
    """The comparisons as CSV for a logged-in admin (the login's guard has checked the
    session); `since`/`until` as the page's window gives them."""
    if not allowed(ROLES):
        raise Forbidden("the experiments' results need the role admin")
    if unknown := sorted(set(request.args) - {"since", "until"}):
        raise AbvocError(f"unknown query parameter(s) {unknown}; this takes since and until")
    window = data.Window(_hour("since"), _hour("until"))
    report = data.results(data.store(), experiment_id, window)
    name = download_name(experiment_id)
    return Response(comparisons_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def register(app: Dash) -> None:
    app.server.add_url_rule(f"{PATH}/<int(min=1, max={MAX_ROW_ID}):experiment_id>.csv",
                            "dashboard_experiment_results_csv", download)
