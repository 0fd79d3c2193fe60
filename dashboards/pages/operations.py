"""The Operations page: requests per second, error rate and latency percentiles per candidate
and hour (the online aggregates, remote candidates included: their predictions flow through the
same worker), the last minutes from the served-prediction ledger, the guardrails' events and
the pauses and kills by hand, the outbox backlog and the worker's and relay's heartbeats and
lag. Two versions of one candidate name are two rows, named ``name vX``
(:class:`dashboards.operations.Names`)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from core.errors import AbvocError
from dashboards import data, plots
from dashboards import operations as ops
from dashboards.access import require_role
from dashboards.pages._page import Page
from dashboards.tables import fmt, isolate, table
from serving.experiment_spec import BY_ADMIN, BY_GUARDRAIL

ROLES = frozenset({"admin"})
ALL = "all candidates"
SPANS = {"24": 24, "168": 168, "all": None}
SPAN_OPTIONS = [{"label": "last 24 hours", "value": "24"},
                {"label": "last 7 days", "value": "168"}, {"label": "all", "value": "all"}]


# The two rates count the same requests over different seconds (finding: 2.45/s in the graph,
# 7.2/s in the table for one burst), so the page says which.
RATES_NOTE = (
    "The two rates divide by different seconds. The graph's requests / s: a candidate's "
    "requests in the hour over the seconds of that hour the service served (from the store's "
    "first to its newest prediction, of any candidate). The table's: its requests in the "
    f"last {ops.LEDGER_MINUTES} minutes over the seconds from its own first request in them "
    f"(or from the start of the {ops.LEDGER_MINUTES} minutes, if it served before) to the "
    "ledger's newest row. A burst reads higher in the table than in the graph; a candidate "
    "that served a burst at the start of a new hour reads higher in the graph. The latency "
    "quantiles differ in the same way and by method: the graph's come from each hour's "
    "latency histogram (within 1 % of the exact value), the table's are exact over the "
    "requests of its minutes (linear between the two nearest, so with few requests its p99 "
    "sits near the slowest one).")


def layout() -> Component:
    names = ops.candidates(data.store())
    return html.Div([
        html.H2("Operations"),
        html.Div(className="controls", children=[
            html.Label(["Candidate", dcc.Dropdown(id="ops-candidate", options=[ALL, *names],
                                                  value=ALL, clearable=False)],
                       className="control"),
            html.Label(["Hours (ending at the newest data)", dcc.Dropdown(
                id="ops-span", options=SPAN_OPTIONS, value="24", clearable=False)],
                className="control"),
        ]),
        dcc.Loading(html.Div(id="ops-traffic")),
        dcc.Loading(html.Div(id="ops-health")),
    ])


def traffic(db: Any, candidate: str | None, hours: int | None) -> Component:
    rows = ops.hourly(db, hours, candidate)
    recent = ops.recent(db, candidate=candidate)
    last = recent[0]["until"].strftime("%Y-%m-%d %H:%M") if recent else None
    return html.Div([
        dcc.Graph(id="ops-graph", figure=plots.operations(rows)),
        html.H3(f"Last {ops.LEDGER_MINUTES} minutes of the served-prediction ledger"
                + (f" (to {last} UTC)" if last else "")),
        table(["candidate", "requests", "requests / s (over its serving seconds here)",
               "error rate", "p50 ms", "p95 ms", "p99 ms"],
              [[r["candidate"], r["requests"], fmt(r["requests_per_s"]), fmt(r["error_rate"]),
                fmt(r["latency_p50_ms"]), fmt(r["latency_p95_ms"]), fmt(r["latency_p99_ms"])]
               for r in recent], "ops-recent"),
        *_unwatched(recent),
        html.P(RATES_NOTE, id="ops-rates-note"),
    ])


def _unwatched(recent: list[dict[str, Any]]) -> list[Component]:
    """Why a ledger row's error rate and latency are "–" or count fewer requests than the row:
    a forced (QA) request's or a shadow copy's ledger row keeps neither (the guardrails watch
    routed requests only); the graph above, from the worker's records, counts them."""
    some = [r for r in recent if r["watched"] < r["requests"]]
    if not some:
        return []
    said = "; ".join(f"{isolate(r['candidate'])}: {r['requests'] - r['watched']:,} of "
                     f"{r['requests']:,}" for r in some)
    return [html.P("Error rate and latency here count routed requests only (an experiment's "
                   "arms, the ones the guardrails watch, and traffic outside experiments): a "
                   "forced (QA) request or a shadow copy keeps neither in "
                   f"the ledger (“–” where a candidate has no other). Not routed: {said}. "
                   "The graph above counts them.", id="ops-unwatched")]


# Who paused or killed (an arm paused before abvoc kept who: "not recorded").
_BY = {BY_ADMIN: "an admin (manual)", BY_GUARDRAIL: "guardrail"}


def health(db: Any, expected: tuple[str, ...] = (), prefix: str | None = None) -> Component:
    events = ops.guardrail_events(db)
    state = ops.pipeline_health(db, expected, prefix)
    checks = state["checks"]
    return html.Div([
        html.H3("Guardrail events and manual pauses"),
        table(["experiment", "status", "arm", "by", "reason", "since (UTC)"],
              [[f"#{e['experiment_id']} {e['experiment']}", e["status"], e["arm"] or "–",
                _BY.get(e["by"], "not recorded"), e["reason"],
                e["at"].strftime("%Y-%m-%d %H:%M") if e["at"] else "–"]
               for e in events], "ops-guardrails") if events
        else html.P("No guardrail has fired, and no experiment or arm is paused or killed.",
                    id="ops-guardrails"),
        html.H3("Event pipeline"),
        html.P(f"Outbox backlog: {state['outbox_pending']:,} events waiting; the oldest for "
               f"{state['outbox_lag_s']:.0f} s.", id="ops-outbox"),
        html.Ul(id="ops-checks", children=[html.Li(f"{name}: {verdict}")
                                           for name, verdict in checks.items()]
                or [html.Li("No worker or relay heartbeat yet.")]),
        table(["component", "instance", "last beat (s ago)", "lag s", "failing", "restarts",
               "last error"],
              [[b["component"], b["instance"], fmt(b["beat_age_s"]), fmt(b["lag_s"]),
                b["failing"], b["restarts"], b["last_error"] or ""]
               for b in state["heartbeats"]], "ops-heartbeats"),
    ])


def _candidate(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise AbvocError("'candidate' must be text")
    return None if not value or value == ALL else value


def _span(value: Any) -> int | None:
    if value is None:
        return SPANS["24"]
    if not isinstance(value, str) or value not in SPANS:
        raise AbvocError(f"'hours' must be one of {', '.join(SPANS)}")
    return SPANS[value]


def register(app: Dash) -> None:
    @app.callback(Output("ops-traffic", "children"), Input("ops-candidate", "value"),
                  Input("ops-span", "value"))
    @require_role(ROLES)
    def _traffic(candidate: Any, span: Any) -> Component:
        return traffic(data.store(), _candidate(candidate), _span(span))

    @app.callback(Output("ops-health", "children"), Input("ops-span", "id"))
    @require_role(ROLES)
    def _health(_: Any) -> Component:
        return health(data.store(), data.expected_parts(), data.topic_prefix())


PAGE = Page(path="operations", title="Operations", roles=ROLES, layout=layout,
            register=register)
