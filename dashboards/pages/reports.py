"""The Reports page: the weekly evaluation reports written so far, newest first, each with a
link to its HTML and its PDF, and a button that writes the current week so far (as `abvoc
report --to-date` does). The files are served under the dashboard's prefix, so the login's
session (not an API key) lets an admin download them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, html
from dash.development.base_component import Component
from flask import Response, current_app, send_file

from core.errors import AbvocError, Forbidden
from dashboards import data
from dashboards.access import allowed, require_role
from dashboards.pages._page import Page
from dashboards.report import CSP, FORMATS, list_reports, report_file, reports_dir, write_report

ROLES = frozenset({"admin"})
FILES = "/dashboard/report-files"
MEDIA = {"html": "text/html", "pdf": "application/pdf"}


def _folder() -> Path:
    return reports_dir(current_app.extensions["abvoc"].settings.data_dir)


def _label(report: dict[str, Any]) -> str:
    """The week, and for a week so far when it was written: its figures still change."""
    if not report["to_date"]:
        return str(report["week"])
    written = str(report["written_at"])[:16].replace("T", " ")
    return f"{report['week']} so far (written {written} UTC)"


def _listing() -> Component:
    reports = list_reports(_folder())
    if not reports:
        return html.P(
            "No weekly report yet: `abvoc up` writes last week's on Monday after 06:00 UTC, "
            "or run `abvoc report`; the button above writes the current week so far.",
            id="reports-empty")
    rows = [html.Tr([html.Td(_label(r)), html.Td([
        html.A(fmt.upper(), href=f"{FILES}/{r['name']}.{fmt}", target="_blank",
               style={"marginRight": "1em"})
        for fmt in FORMATS if fmt in r["files"]])]) for r in reports]
    return html.Table(id="reports-list", className="grid", children=[
        html.Thead(html.Tr([html.Th("week"), html.Th("download")])), html.Tbody(rows)])


def layout() -> Component:
    return html.Div([
        html.H2("Reports"),
        html.Div(className="controls", children=[
            html.Button("Write this week so far", id="reports-to-date", n_clicks=0)]),
        html.Div(id="reports-message", className="message"),
        html.Div(id="reports-body", children=_listing())])


def download(name: str, fmt: str) -> Response:
    """A report file, by the listing's name, for a logged-in admin (the login's guard has
    checked the session)."""
    if not allowed(ROLES):
        raise Forbidden("the reports need the role admin")
    path = report_file(_folder(), name, fmt)
    response = send_file(path, mimetype=MEDIA[fmt], as_attachment=fmt == "pdf",
                         download_name=path.name, max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    return response


def register(app: Dash) -> None:
    app.server.add_url_rule(f"{FILES}/<name>.<any(html, pdf):fmt>", "dashboard_report_file",
                            download)

    @app.callback(Output("reports-body", "children"), Output("reports-message", "children"),
                  Input("reports-to-date", "n_clicks"), prevent_initial_call=True)
    @require_role(ROLES)
    def _write_so_far(_: Any) -> tuple[Component, str]:
        """The current week so far, as `abvoc report --to-date` writes it (Chromium prints
        its PDF: seconds)."""
        try:
            done = write_report(data.store(), _folder(), to_date=True)
        except AbvocError as exc:  # no Chromium, say: the listing stays as it was
            return _listing(), f"Not written: {exc.message}"
        return _listing(), f"Week {done.week} so far written."


PAGE = Page(path="reports", title="Reports", roles=ROLES, layout=layout, register=register)
