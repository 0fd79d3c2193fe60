"""The Offline-vs-online page: for one experiment, each candidate × slice's online accuracy
bound against its offline exact match (a number candidate's: online MAE against offline MAE)
as a heatmap of the gap; a slice picked (or a cell
clicked) drills down into that slice's rows and newest predictions; the traffic-mix and
prediction-distribution shifts; and the ranked findings, all from
:func:`evaluation.divergence.divergence_report` (the report behind ``/divergence``).

A candidate is named as ``name vX`` wherever the experiment runs two versions of that name
(:func:`evaluation.candidate_facts.shown_names`), so two rows never read as one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from dash import Dash, Input, Output, dcc, html, no_update
from dash.development.base_component import Component

from core.errors import AbvocError
from dashboards import csv_downloads, data, feeds, plots
from dashboards.access import require_role, whole_number
from dashboards.auth import PREFIX
from dashboards.pages._page import Page
from dashboards.picker import experiment_picker
from dashboards.report.render import number_candidates
from dashboards.tables import fmt, table
from evaluation.candidate_facts import shown_names

ROLES = frozenset({"admin"})
CONFUSION_CLASSES = 12
"""The most classes a confusion table on the page shows (those with the most wrong answers)."""
ALL = "all"


def layout() -> Component:
    return html.Div([
        html.H2("Offline vs online"),
        html.Div(className="controls", children=[
            experiment_picker("div-select"),
            html.Label(["Slice (drill-down)", dcc.Dropdown(
                id="div-slice", options=[ALL], value=ALL, clearable=False)],
                className="control"),
        ]),
        dcc.Loading(html.Div(id="div-body")),
        html.H3("Slice drill-down"),
        dcc.Loading(html.Div(id="div-drill")),
    ])


def body(report: dict[str, Any]) -> Component:
    """The heatmap, the findings and the shifts of one divergence report."""
    names = _names(report)
    parts: list[Component] = [
        dcc.Graph(id="div-heatmap", figure=plots.gap_heatmap(report["slices"], names)),
        _downloads(report["experiment_id"]),
        html.H3("Findings, most severe first"),
        _findings(report["findings"], names, _nothing_to_compare(report["slices"])),
        html.H3("Wrong answers by stage"), _stages(report, names),
        html.H3("Prediction-distribution shift")]
    shifts = report["prediction_shift"]
    if shifts:
        parts += [dcc.Graph(id=f"div-shift-{i}", figure=plots.shares(s, names[_ref(s)]))
                  for i, s in enumerate(shifts)]
        parts.append(_shift_table(shifts, names))
        parts += _notes(shifts, names, "div-shift-note",
                        lambda s: s.get("offline_labels") or {})
    elif not any(r["online"]["n"] for r in report["slices"]):
        parts.append(html.P("No traffic yet: the predicted classes' shift shows once the "
                            "candidates answer.", id="div-no-shift"))
    else:
        parts.append(html.P("No candidate answers classes (free-text outputs such as LaTeX "
                            "have no class distribution); see the traffic mix below.",
                            id="div-no-shift"))
    parts.append(html.H3("Traffic mix, offline against online"))
    parts += ([dcc.Graph(id=f"div-mix-{i}", figure=plots.mix(m, names[_ref(m)]))
               for i, m in enumerate(report["traffic_mix"])]
              or [html.P("No offline slice counts to compare with.")])
    parts += _notes(report["traffic_mix"], names, "div-mix-note", lambda m: m)
    return html.Div(parts)


def _notes(rows: list[dict[str, Any]], names: dict[tuple[str, str | None], str],
           css: str, block: Callable[[dict[str, Any]], dict[str, Any]]) -> list[Component]:
    """Why a shift or mix test was not judged, or was judged per answer though units sent
    several ('note', 'error', 'unit_note'), and what its tests took as one observation."""
    out = []
    for row in rows:
        said = block(row)
        out += [html.P(f"{names[_ref(row)]}: {said[key]}.", className=css)
                for key in ("error", "note", "unit_note") if said.get(key)]
        if said.get("analysis_unit") == "unit" or row.get("online_analysis_unit") == "unit":
            out.append(html.P(f"{names[_ref(row)]}: tested over units (some unit sent several "
                              "requests), not over each answer.", className=css))
    return out


def _downloads(experiment_id: int) -> Component:
    """Links to the report's tables as CSV (the logged-in admin's session downloads them)."""
    return html.P(className="downloads", children=[
        html.A("Every candidate and slice, offline beside online (CSV)", id="div-csv-slices",
               href=csv_downloads.divergence_href(experiment_id, "slices")), " · ",
        html.A("The findings (CSV)", id="div-csv-findings",
               href=csv_downloads.divergence_href(experiment_id, "findings"))])


def _ref(row: dict[str, Any]) -> tuple[str, str | None]:
    return row["candidate"], row.get("version")


def _names(report: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    """How the page names each candidate version of the report (every part it shows)."""
    return shown_names([*report["slices"], *report["traffic_mix"], *report["prediction_shift"],
                        *report["label_metrics"], *report["findings"]])


def _nothing_to_compare(rows: list[dict[str, Any]]) -> str | None:
    """Why no finding could be made yet (no traffic, no offline results), or None."""
    if not any(r["online"]["n"] for r in rows):
        return "no candidate has served traffic yet"
    if not any(r["offline"].get("n") for r in rows):
        return ("no candidate has offline results yet (`abvoc offline-test`, or `abvoc "
                "candidates offline-results` to import them)")
    return None


def _findings(findings: list[dict[str, Any]], names: dict[tuple[str, str | None], str],
              missing: str | None = None) -> Component:
    if not findings and missing:
        return html.P(f"No finding yet: {missing}, so there is nothing to compare.",
                      id="div-findings")
    if not findings:
        return html.P("No finding: online results are within tolerance of the offline test.",
                      id="div-findings")
    return html.Ol(id="div-findings", children=[
        html.Li([html.B(f"{f['kind'].replace('_', ' ')} · {names[_ref(f)]} · {f['slice']} · "
                        f"severity {f['severity']:.2%}"), html.Br(), f["explanation"]])
        for f in findings])


def _stages(report: dict[str, Any], names: dict[tuple[str, str | None], str]) -> Component:
    """Where the candidates' wrong answers went wrong, for those that record their stages."""
    rows = report["stage_attribution"]["rows"]
    if not rows:
        return html.P("No candidate of this experiment records its stages (the OCR pipeline "
                      "does, and a bundle whose stages declare an answer), or none has a "
                      "truth yet.", id="div-stages")
    return dcc.Graph(id="div-stages", figure=plots.stage_errors(rows, names))


def _stage_table(report: dict[str, Any], slice_: str,
                 names: dict[tuple[str, str | None], str]) -> list[Component]:
    """The slice's wrong answers by the stage blamed, per candidate version (none: nothing)."""
    rows = [r for r in report["stage_attribution"]["rows"] if r["slice"] == slice_]
    stages = list(dict.fromkeys(s for r in rows for s in r["stages"]))
    if not rows:
        return []
    return [html.H4("Wrong answers by the stage blamed"), table(
        ["candidate", "with a truth", "wrong", *stages],
        [[names.get(_ref(r)) or r["candidate"], r["with_truth"], r["errors"],
          *(_count_share(r, s) for s in stages)] for r in rows], "div-drill-stages")]


def _count_share(row: dict[str, Any], stage: str) -> str:
    """A stage's count with its share of the row's wrong answers ('' where it has no such
    stage; the count alone where nothing was wrong)."""
    if stage not in row["counts"]:
        return ""
    share = row["shares"][stage]
    return f"{row['counts'][stage]:,}" + ("" if share is None else f" ({share:.0%})")


def _shift_table(shifts: list[dict[str, Any]],
                 names: dict[tuple[str, str | None], str]) -> Component:
    rows = []
    for s in shifts:
        off = s.get("offline_labels") or {}
        for r in s.get("online_labels", []):
            rows.append([names[_ref(s)], r["label"], fmt(r["output_share"]),
                         fmt(r["label_share"]), fmt(r["excess"], percent=True),
                         fmt(r["p_value"]), fmt(r.get("p_value_holm")),
                         bool(off.get("shifted")) and off.get("top_label") == r["label"]])
    return table(["candidate", "class", "output share", "label share (corrections)", "excess",
                  "McNemar p", "Holm p (over its classes)", "top offline shift"], rows,
                 "div-shift-table")


def drill(db: Any, experiment_id: int, report: dict[str, Any], slice_: str) -> Component:
    """One slice: every candidate's offline and online figures there, and its newest
    predictions (each a link to the inspector)."""
    names = _names(report)
    here = [r for r in report["slices"] if r["slice"] == slice_]
    number_refs = number_candidates(report["slices"])
    numbers = [r for r in here if _ref(r) in number_refs]
    rows = []
    for r in here:
        if _ref(r) in number_refs:
            continue
        on, off = r["online"], r["offline"]
        low, high = on["accuracy_ci"] or (None, None)
        rows.append([names[_ref(r)], fmt(off["n"]), fmt(off["exact_match"]), fmt(on["n"]),
                     f"{fmt(on['accuracy_bound'])} [{fmt(low)}, {fmt(high)}]",
                     fmt(r["gap"], percent=True), fmt(r["p_value"]), r["flagged"],
                     fmt(on["latency_p50_ms"]), fmt(on["latency_p99_ms"])])
    recent = feeds.slice_predictions(db, experiment_id, slice_)
    confusions = [_confusion(i, names[_ref(c)], c["confusion"][slice_])
                  for i, c in enumerate(report["label_metrics"]) if slice_ in c["confusion"]]
    return html.Div([
        html.P(f"Slice {slice_}.", id="div-drill-title"),
        # Left out where the slice holds number candidates only, as the MAE table is where
        # it holds none: shown empty, its headers read as missing figures.
        *([table(["candidate", "offline n", "offline exact match", "online n",
                  "online accuracy bound [95% CI]", "gap", "p (non-inferiority)", "flagged",
                  "latency p50 ms", "latency p99 ms"], rows, "div-drill-table")]
          if rows or not numbers else []),
        *([_mae_table(numbers, names)] if numbers else []),
        *_stage_table(report, slice_, names),
        html.H4("Newest predictions in the slice"),
        html.Table(id="div-drill-predictions", className="grid", children=[
            html.Thead(html.Tr([html.Th(h) for h in ("prediction", "candidate", "arm",
                                                     "output", "confidence", "at (UTC)")])),
            html.Tbody([html.Tr([
                html.Td(dcc.Link(p["prediction_id"],
                                 href=f"{PREFIX}inspector?id={p['prediction_id']}")),
                html.Td(names.get(_ref(p), p["candidate"])),
                html.Td("shadow" if p["shadow"] else p["arm"] or ""),
                html.Td(p["output"]), html.Td(fmt(p["confidence"])),
                html.Td(p["created_at"].strftime("%Y-%m-%d %H:%M:%S"))]) for p in recent])]),
        *confusions,
    ])


def _mae_table(rows: list[dict[str, Any]],
               names: dict[tuple[str, str | None], str]) -> Component:
    """Number candidates in the slice: online MAE against offline MAE (an exact match and an
    accuracy bound mean nothing for numbers)."""
    cells = []
    for r in rows:
        gap, on, off = r.get("mae_gap") or {}, r["online"], r["offline"]
        low, high = on.get("mae_interval") or (None, None)
        cells.append([names[_ref(r)], fmt(off["n"]), fmt(off.get("mae")), fmt(on["n"]),
                      f"{fmt(on.get('mae'))} [{fmt(low)}, {fmt(high)}]",
                      fmt(gap.get("relative"), percent=True), fmt(gap.get("p_value")),
                      bool(gap.get("flagged")), fmt(on["latency_p50_ms"]),
                      fmt(on["latency_p99_ms"])])
    return html.Div([
        html.H4("Number candidates: online MAE (over corrected answers) against offline MAE; "
                "lower is better"),
        table(["candidate", "offline n", "offline MAE", "online n", "online MAE [95% CI]",
               "gap (relative)", "p (Welch)", "flagged",
               "latency p50 ms", "latency p99 ms"], cells, "div-drill-mae-table")])


def _confusion(i: int, candidate: str, c: dict[str, Any]) -> Component:
    """A label candidate's confusion counts in the slice (answer rows, truth columns): the
    :data:`CONFUSION_CLASSES` classes with the most wrong answers, answered or true, where it
    has more (a 50-class table is 2,500 cells a candidate, and two of them held Chromium for
    over a minute); the whole table is in the report's ``label_metrics``."""
    classes, counts = c["classes"], np.asarray(c["counts"], dtype=float).reshape(
        len(c["classes"]), len(c["classes"]))
    shown = list(range(len(classes)))
    note = []
    if len(classes) > CONFUSION_CLASSES:
        wrong = counts.sum(axis=0) + counts.sum(axis=1) - 2 * np.diag(counts)
        shown = sorted(sorted(shown, key=lambda k: (-wrong[k], classes[k]))[:CONFUSION_CLASSES])
        note = [html.P(f"The {CONFUSION_CLASSES} classes with the most wrong answers of "
                       f"{len(classes)}; the other {len(classes) - CONFUSION_CLASSES} are in "
                       "the divergence report's label_metrics (/divergence).",
                       className="note")]
    return html.Div([
        html.H4(f"{candidate}: answers (rows) against truths (columns); uncorrected answers "
                "counted as right"),
        *note,
        table(["answer \\ truth", *(classes[k] for k in shown)],
              [[classes[a], *(c["counts"][a][k] for k in shown)] for a in shown],
              f"div-confusion-{i}")])


def _slice_text(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise AbvocError("'slice' must be text")
    return value or ALL


def register(app: Dash) -> None:
    @app.callback(Output("div-body", "children"), Output("div-slice", "options"),
                  Output("div-slice", "value"), Input("div-select", "value"))
    @require_role(ROLES)
    def _body(experiment_id: Any) -> tuple[Any, ...]:
        experiment_id = whole_number(experiment_id, "experiment")
        if experiment_id is None:
            return html.P("No experiment yet."), [ALL], ALL
        report = feeds.divergence(data.store(), experiment_id)
        names = sorted({r["slice"] for r in report["slices"]}, key=lambda s: (s != ALL, s))
        return body(report), names or [ALL], ALL

    @app.callback(Output("div-slice", "value", allow_duplicate=True),
                  Input("div-heatmap", "clickData"), prevent_initial_call=True)
    @require_role(ROLES)
    def _clicked(click: Any) -> Any:
        try:
            return _slice_text(click["points"][0]["customdata"])
        except (TypeError, KeyError, IndexError):
            return no_update

    @app.callback(Output("div-drill", "children"), Input("div-slice", "value"),
                  Input("div-select", "value"))
    @require_role(ROLES)
    def _drill(slice_: Any, experiment_id: Any) -> Component:
        experiment_id = whole_number(experiment_id, "experiment")
        if experiment_id is None:
            return html.P("No experiment yet.")
        db = data.store()
        return drill(db, experiment_id, feeds.divergence(db, experiment_id), _slice_text(slice_))


PAGE = Page(path="divergence", title="Offline vs online", roles=ROLES, layout=layout,
            register=register)
