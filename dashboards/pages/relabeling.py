"""The Relabeling page: queue sizes by status, labels per day, agreement between annotators, and
for an experiment the audit sample's unbiased accuracy beside the correction-based bound."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import data, relabeling
from dashboards.access import require_role, whole_number
from dashboards.figures import empty, plain
from dashboards.pages._page import Page
from dashboards.picker import experiment_picker
from dashboards.tables import fmt, table

ROLES = frozenset({"admin"})
QUEUE_COLUMNS = ("items", "open", "leased", "review", "done", "flagged", "leases_expired",
                 "without_input")
# The columns as a reader names them (the API's keys are the QUEUE_COLUMNS).
QUEUE_HEADERS = ("items", "open", "leased", "in review", "done", "flagged", "leases expired",
                 "without an input")


def layout() -> Component:
    return html.Div([
        html.H2("Relabeling"),
        dcc.Loading(html.Div(id="relabel-overview")),
        html.H3("Online accuracy: audited against the correction bound"),
        experiment_picker("relabel-exp"),
        dcc.Loading(html.Div(id="relabel-accuracy")),
    ])


def _queues(queues: list[dict[str, Any]]) -> Component:
    if not queues:
        return html.P("No items are queued yet.", id="relabel-queues")
    rows = [[q["queue"], *[q.get(c, 0) for c in QUEUE_COLUMNS]] for q in queues]
    return table(["queue", *QUEUE_HEADERS], rows, "relabel-queues")


def _throughput(days: list[tuple[str, int, int]]) -> go.Figure:
    if not any(n or m for _, n, m in days):
        return empty("No annotations in the last two weeks: labels, skips and flags show here "
                     "per day.")
    fig = go.Figure([go.Bar(x=[d for d, _, _ in days], y=[n for _, n, _ in days],
                            name="labels"),
                     go.Bar(x=[d for d, _, _ in days], y=[n for _, _, n in days],
                            name="skips and flags")])
    fig.update_layout(barmode="stack", height=260, margin={"t": 30, "b": 40},
                      title="Annotations per day (UTC)")
    return fig


def _agreement(figures: dict[str, Any]) -> Component:
    note = f" ({figures['note']})" if figures.get("note") else ""
    return html.P(id="relabel-agreement", children=(
        f"Items with two annotators: {fmt(figures.get('items_with_two_labels'))}; exact "
        f"agreement {fmt(figures.get('exact_agreement'))}; Cohen's kappa on accepting the "
        f"customer's correction {fmt(figures.get('kappa'))}{note}."))


def _accuracy_figure(rows: list[list[Any]]) -> go.Figure:
    overall = [r for r in rows if r[2] == "all" and r[3] is not None]
    if not overall:
        return empty("No audited predictions yet: labels of the audit sample give this figure.")
    names = [plain(r[0]) for r in overall]
    fig = go.Figure([
        go.Bar(x=names, y=[r[3] for r in overall], name="audited (unbiased)",
               error_y={"type": "data", "symmetric": False,
                        "array": [(r[5] or r[3]) - r[3] for r in overall],
                        "arrayminus": [r[3] - (r[4] or r[3]) for r in overall]}),
        go.Bar(x=names, y=[r[9] for r in overall], name="upper bound (known errors)")])
    fig.update_layout(barmode="group", height=300, yaxis={"range": [0, 1]},
                      margin={"t": 30, "b": 40}, title="Accuracy, slice all")
    return fig


def register(app: Dash) -> None:
    @app.callback(Output("relabel-overview", "children"), Input("relabel-exp", "id"))
    @require_role(ROLES)
    def _overview(_: Any) -> Component:
        figures = relabeling.overview(data.store())
        return html.Div([_queues(figures["queues"]),
                         dcc.Graph(id="relabel-throughput",
                                   figure=_throughput(figures["throughput"])),
                         _agreement(figures["agreement"])])

    @app.callback(Output("relabel-accuracy", "children"), Input("relabel-exp", "value"))
    @require_role(ROLES)
    def _accuracy(experiment_id: Any) -> Component:
        chosen = whole_number(experiment_id, "experiment")
        if chosen is None:
            return html.P("Pick an experiment.")
        # Accuracies and the audit's own interval: the unit moments would change none of them.
        rows = relabeling.accuracy_rows(data.results(data.store(), chosen, per_unit=False))
        return html.Div([
            dcc.Graph(id="relabel-accuracy-graph", figure=_accuracy_figure(rows)),
            table(["variant", "candidate", "slice", "audited", "low", "high", "audited n",
                   "all labels (biased low)", "labels n", "correction bound"], rows,
                  "relabel-accuracy-table")])


PAGE = Page(path="relabeling", title="Relabeling", roles=ROLES, layout=layout,
            register=register)
