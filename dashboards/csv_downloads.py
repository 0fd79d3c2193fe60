"""The pages' CSV downloads, served under the dashboard's prefix so the login's session (not an
API key) lets an admin download them: the Experiments page's comparisons for the hours it shows
(the table of ``GET /v1/experiments/{id}/results.csv``) and the Offline-vs-online page's slice
rows or findings (``GET /v1/experiments/{id}/divergence.csv``, its default alpha and
tolerance, as the page shows them)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from dash import Dash
from flask import Response, request

from core.errors import Forbidden
from core.query import check_query
from core.times import query_window
from dashboards import data, feeds
from dashboards.access import allowed
from evaluation.results_csv import asked_table, attachment, comparisons_csv, divergence_csv

ROLES = frozenset({"admin"})
RESULTS = "/dashboard/experiment-results"
DIVERGENCE = "/dashboard/experiment-divergence"


def href(experiment_id: int, window: data.Window) -> str:
    """The comparisons' address for the experiment and the page's hours."""
    hours = {k: v.isoformat() for k, v in (("since", window.since), ("until", window.until))
             if v is not None}
    return f"{RESULTS}/{experiment_id}.csv" + (f"?{urlencode(hours)}" if hours else "")


def divergence_href(experiment_id: int, table: str) -> str:
    """The address of one of the divergence report's tables (DIVERGENCE_TABLES)."""
    return f"{DIVERGENCE}/{experiment_id}.csv?{urlencode({'table': table})}"


def _checked(*known: str) -> None:
    """The login's guard has checked the session; the role and the query are checked here."""
    if not allowed(ROLES):
        raise Forbidden("the experiments' reports need the role admin")
    check_query(request.args, *known)


def results(experiment_id: int) -> Response:
    """The comparisons; `since`/`until` as the Experiments page's window gives them."""
    _checked("since", "until")
    window = data.Window(*query_window(request.args))
    report = data.results(data.store(), experiment_id, window)
    return Response(comparisons_csv(report), mimetype="text/csv",
                    headers=attachment(experiment_id))


def divergence(experiment_id: int) -> Response:
    """The slice rows (`table=slices`, the default) or the findings (`table=findings`)."""
    _checked("table")
    table = asked_table(request.args.get("table"))
    report = feeds.divergence(data.store(), experiment_id, stages=False)
    return Response(divergence_csv(report, table), mimetype="text/csv",
                    headers=attachment(experiment_id, f"divergence-{table}"))


def register(app: Dash) -> None:
    views: dict[str, Callable[[int], Response]] = {RESULTS: results, DIVERGENCE: divergence}
    for path, view in views.items():
        # row_id: app.path_ints' converter (an id no experiment can have is its own 404)
        app.server.add_url_rule(f'{path}/<row_id("experiment"):experiment_id>.csv',
                                f"dashboard_{view.__name__}_csv", view)
