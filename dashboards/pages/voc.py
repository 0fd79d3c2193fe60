"""The VOC page: the stream of corrections and outcome reports, newest first, each beside the
prediction's output, filtered by a text search and paged. Everything customers wrote is shown
as text: Dash renders strings as text nodes, never as markup."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.development.base_component import Component

from core.errors import AbvocError
from dashboards import data, feeds
from dashboards.access import require_role, whole_number
from dashboards.auth import PREFIX
from dashboards.pages._page import Page
from dashboards.tables import answer_text, fmt, isolate

ROLES = frozenset({"admin"})
KIND_OPTIONS = [{"label": "corrections", "value": "correction"},
                {"label": "outcome reports", "value": "outcome"}]


def layout() -> Component:
    return html.Div([
        html.H2("Voice of the customer"),
        html.Div(className="controls", children=[
            html.Label(["Search (correction, comment, output, id, unit, candidate, metric)",
                        dcc.Input(id="voc-search", type="text", debounce=True,
                                  placeholder="text to find", maxLength=feeds.MAX_QUERY)],
                       className="control wide"),
            html.Label(["Show", dcc.Checklist(id="voc-kinds", options=KIND_OPTIONS,
                                              value=list(feeds.KINDS), inline=True)],
                       className="control"),
            html.Div(className="control", children=[
                html.Button("◀ newer", id="voc-prev"), html.Span(" "),
                html.Button("older ▶", id="voc-next")]),
        ]),
        dcc.Store(id="voc-page", data=1),
        html.P(id="voc-count"),
        dcc.Loading(html.Div(id="voc-body")),
    ])


def rows_table(page: feeds.FeedPage) -> Component:
    """The page's rows; ids link to the prediction inspector."""
    if not page.rows:
        return html.P("Nothing matches.", id="voc-table")
    body = []
    for r in page.rows:
        pid = r["prediction_id"]
        body.append(html.Tr([
            html.Td(r["at"].strftime("%Y-%m-%d %H:%M:%S")), html.Td(r["kind"]),
            html.Td(dcc.Link(pid, href=f"{PREFIX}inspector?id={pid}") if pid else "–"),
            html.Td(_where(r), className="voc-where"),
            html.Td(r["shown_candidate"]), html.Td(r["output"] or "–", className="voc-output"),
            html.Td(_report(r), className="voc-report"),
            html.Td(r["comment"] or "", className="voc-comment"), html.Td(fmt(r["rating"])),
        ]))
    return html.Table(id="voc-table", className="grid", children=[
        html.Thead(html.Tr([html.Th(h) for h in ("at (UTC)", "kind", "prediction",
                                                 "experiment · unit", "candidate",
                                                 "output", "correction / outcome", "comment",
                                                 "rating")])),
        html.Tbody(body)])


def _where(r: dict[str, Any]) -> str:
    """The experiment and, for an outcome reported by unit, the unit id (as text): such a row
    has no prediction, and the search matches its unit id."""
    said = [f"#{r['experiment_id']}"] if r.get("experiment_id") else []
    if r.get("unit_id"):
        said.append(f"unit {isolate(r['unit_id'])}")
    return " · ".join(said) or "–"


def _report(r: dict[str, Any]) -> str:
    if r["kind"] == "correction":
        return answer_text(r["report"])
    return f"{r['report']} = {fmt(r['value'])}"


def _kinds(value: Any) -> tuple[str, ...]:
    if value is None:
        return feeds.KINDS
    if not isinstance(value, list) or any(v not in feeds.KINDS for v in value):
        raise AbvocError(f"'kinds' must be a list of {', '.join(feeds.KINDS)}")
    return tuple(value)


def _text(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise AbvocError("'search' must be text")
    return value or ""


def register(app: Dash) -> None:
    @app.callback(Output("voc-body", "children"), Output("voc-count", "children"),
                  Output("voc-page", "data"), Input("voc-search", "value"),
                  Input("voc-kinds", "value"), Input("voc-prev", "n_clicks"),
                  Input("voc-next", "n_clicks"), State("voc-page", "data"))
    @require_role(ROLES)
    def _body(search: Any, kinds: Any, _prev: Any, _next: Any,
              current: Any) -> tuple[Any, ...]:
        page = whole_number(current, "page") or 1
        step = {"voc-prev": -1, "voc-next": 1}.get(ctx.triggered_id or "", 0)
        page = page + step if step else 1  # a new search starts on the first page
        found = feeds.feed(data.store(), _text(search), _kinds(kinds), page)
        count = (f"{found.total:,} reports match; page {found.page} of {found.pages}, "
                 "newest first.")
        return rows_table(found), count, found.page


PAGE = Page(path="voc", title="VOC", roles=ROLES, layout=layout, register=register)
