"""The Experiments page: pick an experiment, then read its arms, the configured against the
observed split with the sample-ratio check, every metric per arm with intervals, the
comparisons with corrected p-values and the always-valid interval over time, for one slice and
time window; and the decision with its reasons, always the whole experiment's.

The callbacks are thin: :func:`controls` and :func:`body` are plain functions of the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from core.builtin_metrics import MATCH_METRICS, match_metrics_judging
from core.errors import AbvocError
from core.text import percent
from dashboards import csv_downloads, data, figures
from dashboards.access import require_role, whole_number
from dashboards.pages import experiment_notes as notes
from dashboards.pages._page import Page
from dashboards.picker import experiment_picker
from dashboards.tables import fmt, isolate, table, verdict_text
from evaluation.candidate_facts import shown_names
from evaluation.decisions import INCONCLUSIVE, KILLED_REMEDY
from evaluation.online import ALL
from evaluation.stats.srm import CHI_SQUARE
from serving.experiments import KILL_SWITCH

ROLES = frozenset({"admin"})
LEFT_OUT = "\u0000left-out"  # the disabled option's value: no slice is named so


def layout() -> Component:
    return html.Div([
        html.H2("Experiments"),
        html.Div(className="controls", children=[
            experiment_picker("exp-select"),
            html.Label(["Slice", dcc.Dropdown(id="exp-slice", options=[ALL], value=ALL,
                                              clearable=False)], className="control"),
            html.Label(["Time (UTC hours with data)", dcc.RangeSlider(
                id="exp-time", min=0, max=1, step=1, value=[0, 1], allow_direct_input=False,
                updatemode="mouseup", marks=NO_HOURS)], className="control wide time"),
        ]),
        html.P(id="exp-window", className="window"),
        dcc.Loading(html.Div(id="exp-body")),
    ])


# Without marks of its own the slider shows its bare ends, "0" and "1", as if hours.
NO_HOURS = {0: "no traffic yet", 1: ""}


def controls(db: Any, experiment_id: int | None) -> tuple[list[Any], str, int, list[int],
                                                          dict[int, str]]:
    """Slice options and the time slider (max, value, marks) for an experiment. The options are
    the slices the results test, then (disabled) how many quieter ones they left out."""
    if experiment_id is None:
        return [ALL], ALL, 1, [0, 1], NO_HOURS
    span = data.hour_range(db, experiment_id)
    hours = 1 if span is None else int((span[1] - span[0]) / data.HOUR) + 1
    marks = NO_HOURS if span is None else {0: _hour(span[0]), hours: _hour(span[1] + data.HOUR)}
    choice = data.slices(db, experiment_id)
    options: list[Any] = list(choice.shown)
    if choice.left_out:
        options.append({"label": f"({choice.left_out:,} quieter slices left out: the results "
                                 f"test the {choice.max_slices} busiest)",
                        "value": LEFT_OUT, "disabled": True})
    return options, ALL, hours, [0, hours], marks


def window_of(db: Any, experiment_id: int, time_value: list[Any] | None) -> data.Window:
    """The slider's hours as a time window; the whole range is no window at all."""
    span = data.hour_range(db, experiment_id)
    if span is None or not time_value or len(time_value) != 2:
        return data.Window()
    hours = int((span[1] - span[0]) / data.HOUR) + 1
    # Each handle is held to the slider's range: a forged [-5, -3] read "Data from 10:00 to
    # 07:00", a window ending before it began.
    lo, hi = sorted(min(max(int(v), 0), hours) for v in time_value)
    if lo == 0 and hi == hours:
        return data.Window()
    return data.Window(span[0] + data.HOUR * lo, span[0] + data.HOUR * hi)


def describe(window: data.Window) -> str:
    if window.since is None and window.until is None:
        return "All data."
    if window.since == window.until and window.since is not None:
        return (f"An empty window: both handles are on {_hour(window.since)}; move one to "
                "choose an hour or more.")
    since = _hour(window.since) if window.since else "the start"
    until = _hour(window.until) if window.until else "now"
    return f"Data from {since} to {until} (UTC)."


def body(db: Any, experiment_id: int | None, slice_: str, window: data.Window) -> Component:
    if experiment_id is None:
        return html.P("No experiment yet: create one with `abvoc experiment create`.")
    units: list[Any] = []
    labels = data.labels(db, experiment_id, window)  # once for the page's three reads
    res = data.results(db, experiment_id, window, units_out=units, labels=labels)
    view = data.experiment(db, experiment_id)
    windowed = window != data.Window()
    # The decision is the whole experiment's, never one of a few hours' (nor of a slice).
    decision = data.results(db, experiment_id)["decision"] if windowed else res["decision"]
    slice_ = slice_ or ALL
    primary = res["experiment"]["primary_metric"]
    parts: list[Component] = [_summary(res)]
    parts += _srm_banner(res.get("srm") or {})
    parts.append(_decision(decision, view))
    if windowed and not any(res["metrics"].values()):
        parts.append(html.P("No data in this window: choose other hours to see the arms, the "
                            "metrics and the comparisons.", id="exp-no-data"))
        return html.Div(parts)
    if slice_ != ALL and not any(slice_ in m for m in res["metrics"].values()):
        parts.append(html.P(_untested(slice_, res.get("slice_choice") or {}),
                            id="exp-slice-untested"))
        return html.Div(parts)
    # Each arm's figures on the matching metrics its answers are judged by only (a class is
    # right or wrong, never "two tokens off"; a number is judged by its error).
    judged = {v["name"]: match_metrics_judging(v.get("output_type")) for v in res["variants"]}
    per_arm = [r for r in data.arm_intervals(db, experiment_id, slice_, window, res["alpha"],
                                             units[0], labels)
               if r["metric"] not in MATCH_METRICS
               or r["metric"] in judged.get(r["variant"], MATCH_METRICS)]
    if slice_ == ALL:
        per_arm += data.outcome_intervals(res)
    parts += [html.H3("Arms and split"), _arms(res, slice_, view),
              html.H3(f"Metrics per arm ({slice_})"),
              dcc.Graph(id="exp-metrics-graph", figure=figures.metric_intervals(per_arm)),
              *notes.truth(per_arm), *notes.outcomes(res, slice_),
              html.H3(f"Comparisons with control ({slice_})"), _comparisons(res, slice_),
              html.A("Every comparison of these hours, all slices (CSV)", id="exp-csv",
                     href=csv_downloads.href(experiment_id, window)),
              *notes.analysis_unit(res),
              html.H3("Always-valid interval over time")]
    series = data.sequential_series(db, experiment_id, primary, slice_, window, labels=labels)
    if len({r["until"] for r in series}) < 2:
        parts.append(html.P("It appears once the data spans two hours or more.",
                            id="exp-sequential-note"))
    else:
        parts.append(dcc.Graph(id="exp-sequential-graph",
                               figure=figures.sequential(series, primary)))
        if primary in (res.get("analysis_unit") or {}).get("per_unit", []):
            parts.append(html.P(f"The series counts predictions as independent at every hour "
                                f"(units are summed over the whole experiment only), so its "
                                f"intervals are narrower than {primary}'s per-unit ones in the "
                                "table above.", id="exp-sequential-per-unit"))
    return html.Div(parts)


def _untested(slice_: str, choice: dict[str, Any]) -> str:
    """Why a slice has no figures: the results test slice all and their busiest slices only
    (their graph would otherwise read the aggregates, which have no such limit)."""
    said = f"Slice {isolate(slice_)} has no figures in these results"
    if choice.get("left_out"):
        return (f"{said}: it is outside the tested slices. The results test slice all and the "
                f"{choice['max_slices']} slices with the most predictions in these hours; "
                f"{choice['left_out']:,} quieter slices ({choice['left_out_predictions']:,} "
                "predictions) were left out, and still count in slice all.")
    return f"{said}: it has no predictions in these hours."


def _summary(res: dict[str, Any]) -> Component:
    exp = res["experiment"]
    # <bdi>: a name's own direction (a U+202E in it) cannot reverse the sentence after it.
    since = exp.get("status_since")
    status = exp["status"] + (f" since {since[:16].replace('T', ' ')} UTC"
                              if since and exp["status"] in ("paused", "killed", "stopped")
                              else "")
    return html.P(["Experiment ", html.B(html.Bdi(exp["name"])),
                   f" is {status}; primary metric ",
                   html.B(exp["primary_metric"]), f"; alpha {res['alpha']:g}; the always-valid "
                   f"test is tuned for {exp['sequential_tuned_for']:,.0f} per arm."],
                  id="exp-summary")


def _decision(decision: dict[str, Any], view: dict[str, Any]) -> Component:
    action = decision["action"].replace("_", " ")
    head = f"Decision: {action}" + (f" arm {decision['arm']}" if decision.get("arm") else "")
    reasons = list(decision.get("reasons", []))
    kind = kind_was = decision["action"]
    if view.get("status") == "killed":
        # One line says the kill, its why and the one remedy. An inconclusive decision leads
        # with its own line about the kill (without the why): it is not said twice.
        kind, head = "stop", "Killed: the experiment serves only its control"
        why = view.get("status_reason") or KILL_SWITCH
        said = ("was not enough for a decision" if kind_was == INCONCLUSIVE
                else f"says: {action}" + (f" arm {decision['arm']}" if decision.get("arm")
                                          else ""))
        reasons = [f"the experiment is killed ({why}): every unit goes to its control, so its "
                   f"treatments gather no more data; {KILLED_REMEDY}",
                   f"the evidence so far {said}",
                   *(reasons[1:] if kind_was == INCONCLUSIVE else reasons)]
    elif view.get("status") == "draft" and kind == "keep_running":
        head = "Draft: not started, so there is nothing to decide yet"
    return html.Div(className=f"decision {kind}", id="exp-decision", children=[
        html.H3(head),
        html.P("For the whole experiment: all its data and every slice, whatever the slice "
               "and hours chosen above.", id="exp-decision-scope"),
        html.Ul([html.Li(r) for r in reasons])])


def _role(v: dict[str, Any], first: bool, canary: dict[str, Any]) -> str:
    """The arm's role, with why its traffic differs from its configured weight."""
    if v["shadow"]:
        return "shadow"
    role = "control" if first else "treatment"
    if v.get("paused"):
        return f"{role}, paused: {v['paused']}"
    if canary.get("treatment") == v["name"] and canary.get("steps"):
        return f"{role}, canary step {canary.get('step', 0) + 1} of {len(canary['steps'])}"
    return role


def _arms(res: dict[str, Any], slice_: str, view: dict[str, Any]) -> Component:
    srm = res.get("srm") or {}
    # After a re-split (an arm paused or resumed, a canary step) the check counts only units
    # first seen since then: the arms' observed units stay the whole experiment's, and the
    # check's own counts go into its line.
    since = srm.get("since")
    now = dict(zip((a["name"] for a in view.get("arms") or []), view.get("weights") or [],
                   strict=False))
    canary = view.get("canary") or {}
    # Two versions of one name read "iris v1"/"iris v2", as on Offline vs online.
    names = shown_names(res["variants"])
    rows = []
    for v in res["variants"]:
        figures_ = res["metrics"].get(v["name"], {}).get(slice_, {})
        # In a time window the arm's units are those it served in the window, as the API
        # counts them (the check's are those first seen in it: another figure).
        whole = not v["shadow"] and slice_ == ALL and not since and res.get("window") is None
        overall = srm.get("units", {}).get(v["name"]) if whole else None
        expected = srm.get("expected", {}).get(v["name"]) if whole else None
        share = None if v["shadow"] else now.get(v["name"])
        # A draft or stopped experiment serves nobody: its weights are the set-up's split.
        idle = view.get("status") in ("draft", "stopped") and not v["shadow"]
        rows.append([v["name"], names[(v["candidate"], v.get("version"))],
                     _role(v, v is res["variants"][0], canary),
                     fmt(v["weight"]), f"none ({view['status']})" if idle
                     else "–" if share is None else percent(share),
                     fmt(figures_.get("units") if overall is None else overall),
                     fmt(expected), fmt(figures_.get("predictions"))])
    arms_table = table(["arm", "candidate", "role", "configured weight", "traffic now",
                        "units observed", "units expected", "predictions"], rows, "exp-arms")
    return html.Div([arms_table, html.P(_srm_line(srm, slice_), id="exp-srm")])


def _srm_banner(srm: dict[str, Any]) -> list[Component]:
    """The banner says what the check's line says: the overall check alone makes the results
    untrustworthy; a mismatch within some slices is a warning about those slices."""
    if srm.get("mismatch"):
        return [html.Div("Sample ratio mismatch: the split does not follow the configured "
                         "weights, so these results are untrustworthy.",
                         className="alert", id="exp-srm-alert")]
    if srm.get("slice_warning"):
        return [html.Div(f"Warning: {srm['slice_warning']}.", id="exp-srm-warning",
                         style={"background": "#ffd", "padding": "8px",
                                "border": "1px solid #c90"})]
    return []


def _srm_line(srm: dict[str, Any], slice_: str) -> str:
    if not srm:
        return "Sample-ratio check: needs two arms or more."
    minimum = f"fewer than {srm.get('min_expected', 5):g} units expected in an arm"
    restart, none_since = _restart(srm)
    if slice_ == ALL:
        p = srm.get("p_value")
        if p is None:
            why = none_since or srm.get("error") or "no units yet"
            return f"{restart}Sample-ratio check: not computed ({why})."
        verdict = "MISMATCH" if srm["mismatch"] else "ok"
        method, statistic = _srm_test(srm)
        line = (f"{restart}Sample-ratio check ({method}, all units): {statistic}p = {p:.3g} "
                f"against threshold {srm['threshold']:g}: {verdict}.")
        if srm.get("slices_tested") or srm.get("slices_too_small"):
            line += (f" Slices: {srm.get('slices_tested', 0)} tested, Holm-adjusted across "
                     f"them; {srm.get('slices_too_small', 0)} too small ({minimum}).")
        if srm.get("mismatched_slices"):
            line += f" Mismatch within: {', '.join(srm['mismatched_slices'])} (a warning)."
        return line
    p = srm.get("slice_p_values", {}).get(slice_)
    if p is None:
        why = none_since or srm.get("error") or f"too few units: {minimum}"
        return f"{restart}Sample-ratio check in slice {slice_}: not tested ({why})."
    adjusted = srm.get("slice_p_adjusted", {}).get(slice_)
    held = slice_ in srm.get("mismatched_slices", [])
    verdict = ("MISMATCH within this slice: its figures are suspect (the overall check decides "
               "whether the results are trustworthy)") if held else "ok"
    holm_p = f", Holm-adjusted p = {adjusted:.3g}" if adjusted is not None else ""
    return (f"Sample-ratio check in slice {slice_}: p = {p:.3g}{holm_p} against threshold "
            f"{srm['threshold']:g}: {verdict}.")


def _srm_test(srm: dict[str, Any]) -> tuple[str, str]:
    """The test that gave the overall p (``srm.method``), and the chi-square's statistic: an
    arm expecting fewer than 5 units is tested exactly, and the chi-square statistic, still
    computed then, is not what its p comes from (one unit read "chi-square ... statistic 1,
    p = 1", the exact binomial's p beside the chi-square's statistic)."""
    method = srm.get("method") or CHI_SQUARE
    if method != CHI_SQUARE or srm.get("statistic") is None:
        return method, ""
    return method, f"statistic {srm['statistic']:.3g}, "


def _restart(srm: dict[str, Any]) -> tuple[str, str]:
    """What the line says when the check restarted under a new split (``srm.since``): when, its
    counts since, and why it may have none yet (not "no units have been assigned")."""
    since = srm.get("since")
    if not since:
        return "", ""
    at = datetime.fromisoformat(since).strftime("%Y-%m-%d %H:%M")
    counts = ", ".join(f"{isolate(arm)} {n:,}" for arm, n in (srm.get("units") or {}).items())
    said = (f"The sample-ratio check restarts at {at} UTC under the current allocation (an arm "
            f"paused or resumed, or a canary step): it counts only units first seen since then "
            f"({counts}). ")
    none = "" if any((srm.get("units") or {}).values()) else f"no units since {at} UTC yet"
    return said, none


def _comparisons(res: dict[str, Any], slice_: str) -> Component:
    rows = []
    for r in res.get("comparisons", []):
        if r["slice"] != slice_:
            continue
        rows.append([r["treatment"], r["metric"], fmt(r["control_mean"]),
                     fmt(r["treatment_mean"]), _interval(r["difference"], r["ci_low"],
                                                         r["ci_high"]),
                     fmt(r["relative_lift"], percent=True), fmt(r["p_value"]),
                     fmt(r["p_holm"]), fmt(r["p_bh"]),
                     _interval(None, r["sequential_ci_low"], r["sequential_ci_high"]),
                     fmt(r["sequential_p_value"]), verdict_text(r)])
    if not rows:
        return html.P("No comparison in this slice yet.", id="exp-comparisons")
    return table(["treatment", "metric", "control", "treatment mean", "difference [95% CI]",
                  "relative lift", "p", "p (Holm)", "p (BH)", "always-valid CI",
                  "always-valid p", "verdict"], rows, "exp-comparisons")


def _interval(centre: float | None, low: float | None, high: float | None) -> str:
    inner = f"[{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
    return f"{fmt(centre)} {inner}".strip() if centre is not None else inner or "–"


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:00")


def register(app: Dash) -> None:
    @app.callback(Output("exp-slice", "options"), Output("exp-slice", "value"),
                  Output("exp-time", "max"), Output("exp-time", "value"),
                  Output("exp-time", "marks"), Input("exp-select", "value"))
    @require_role(ROLES)
    def _controls(experiment_id: Any) -> tuple[Any, ...]:
        return controls(data.store(), whole_number(experiment_id, "experiment"))

    @app.callback(Output("exp-body", "children"), Output("exp-window", "children"),
                  Input("exp-select", "value"), Input("exp-slice", "value"),
                  Input("exp-time", "value"))
    @require_role(ROLES)
    def _body(experiment_id: Any, slice_: Any, time_value: Any) -> tuple[Component, str]:
        db = data.store()
        experiment_id = whole_number(experiment_id, "experiment")
        if slice_ is not None and not isinstance(slice_, str):
            raise AbvocError("'slice' must be text")
        if time_value is not None and (not isinstance(time_value, list) or len(time_value) != 2):
            raise AbvocError("'time' must be a pair of hours")
        hours = [whole_number(v, "time") for v in time_value or []]
        if None in hours:  # a handle without a value: whole_number lets None through
            raise AbvocError("'time' must be a pair of hours")
        window = window_of(db, experiment_id, hours) if experiment_id else data.Window()
        return body(db, experiment_id, slice_ or ALL, window), describe(window)


PAGE = Page(path="experiments", title="Experiments", roles=ROLES, layout=layout,
            register=register)
