"""The prediction inspector: any prediction by id (typed, or from a link's ``?id=``). For an OCR
prediction, its stages: the detector's boxes (drawn on the input image while serving still keeps
it, `ABVOC_INPUT_RETENTION_HOURS`; on an empty canvas of their extent after), the recognizer's
classes and scores, the aligner's relations and the converter's string; then its corrections,
its truth or label and the stage blamed (:func:`evaluation.stage_blame.verdict`). For other
candidates, the input while it is kept (an image, or the tensors as sent), the output and the
stages as JSON (a bundle's stage answers among them), and the stage blamed where its stages
declare answers."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from core.errors import AbvocError
from core.events import typed_value
from dashboards import data, feeds, plots
from dashboards.access import require_role
from dashboards.kept_input import kept_input
from dashboards.pages._page import Page
from dashboards.tables import answer_text, fmt, isolate, table
from feedback.item_view import describe_input
from serving.images import decode_image, encode_png

ROLES = frozenset({"admin"})
MAX_ID = 64


def layout() -> Component:
    return html.Div([
        html.H2("Prediction inspector"),
        html.Div(className="controls", children=[
            html.Label(["Prediction id", dcc.Input(id="insp-id", type="text", debounce=True,
                                                   maxLength=MAX_ID, placeholder="p-…")],
                       className="control wide"),
            html.Button("Inspect", id="insp-go"),
        ]),
        dcc.Loading(html.Div(id="insp-body")),
    ])


def is_ocr(stages: dict[str, Any] | None) -> bool:
    return bool(stages) and "detector" in stages and "recognizer" in stages  # type: ignore[operator]


def body(found: dict[str, Any] | None, prediction_id: str) -> Component:
    if not prediction_id:
        return html.P("Type a prediction id, or follow one from the VOC or Offline-vs-online "
                      "pages.", id="insp-empty")
    if len(prediction_id) > MAX_ID:  # a link's (the field takes no more): no lookup
        return html.P(f"The id is {len(prediction_id)} characters long, and a prediction id is "
                      f"at most {MAX_ID}: no prediction has it. Was the link cut or changed on "
                      "its way?", id="insp-too-long")
    if found is None:
        return html.P(["No prediction ", html.Bdi(prediction_id), " in the store."],
                      id="insp-missing")
    parts: list[Component] = [_summary(found)]
    if found.get("excluded"):
        ex = found["excluded"]
        parts.append(html.P(
            f"Served within experiment #{ex['experiment_id']}, arm {ex['arm'] or '–'}, but "
            f"outside its split: {_WHY_EXCLUDED.get(ex.get('reason'), _WHY_UNKNOWN)}. It is "
            "not counted in the experiment's results.", id="insp-excluded"))
    if found.get("failed"):
        parts.append(html.P(
            "The candidate failed to answer this request: it has no output, and the failure "
            "counts in the candidate's error rate (the client got the error, with its status).",
            id="insp-failed"))
    if not found["recorded"]:
        parts.append(html.P("The API served it, but the evaluation worker has not recorded it "
                            "yet: only the ledger's entry is known.", id="insp-ledger"))
    stages = found.get("stages") or {}
    kept = found.get("input")
    if is_ocr(stages):
        parts += _ocr(stages, kept)
    elif found["recorded"]:
        shown = describe_input(kept["kind"], kept["data"]) if kept else None
        parts += [html.H3("Input"),
                  kept_input(shown, "insp-input", "The input is not kept: its retention "
                             "passed, or the service keeps none (or none this large)."),
                  html.H3("Output"), html.Pre(output_text(found), id="insp-output"),
                  html.H3("Stages"), html.Pre(json.dumps(stages, indent=2, sort_keys=True),
                                              id="insp-stages")]
    parts += [html.H3("Corrections"), _corrections(found), html.H3("Truth and blame"),
              _blame(found)]
    return html.Div(parts)


def output_text(found: dict[str, Any]) -> str:
    """The output as the page shows it: a JSON answer indented, since the store keeps it on one
    line (a page's boxes ran past the page's right edge and scrolled it sideways)."""
    if found.get("failed"):
        return "(none: the candidate failed)"
    if found.get("output_type") == "json":
        value = typed_value(found["output"], "json")
        if not isinstance(value, str):  # a JSON string (or legacy plain text) shown as it is
            return json.dumps(value, indent=2, ensure_ascii=False)
    return str(found["output"])


# Why a request served within an experiment was kept out of it (the ledger's `excluded`).
_WHY_EXCLUDED = {
    "forced": "an admin's forced-arm (QA) request",
    "paused": "served while the experiment was paused (every unit to its control)",
    "killed": "served after the experiment was killed (every unit to its control)",
}
_WHY_UNKNOWN = ("an admin's forced-arm (QA) request, or a request served while the experiment "
                "was killed or paused (all to its control); served before abvoc recorded which")


def _summary(f: dict[str, Any]) -> Component:
    ex = f.get("excluded") or {}
    role = "shadow" if f.get("shadow") else (f.get("arm") or ex.get("arm") or "–")
    experiment = f["experiment_id"] if not ex else f"{ex['experiment_id']} (not counted)"
    output = "failed: no answer" if f.get("failed") else f.get("output") or "–"
    return table(["prediction", "candidate", "experiment", "arm", "slice", "output",
                  "confidence", "latency ms", "at (UTC)"],
                 [[f["prediction_id"], f["shown_candidate"], experiment, role,
                   f.get("slice") or "–", output, fmt(f.get("confidence")),
                   fmt(f.get("latency_ms")), f["created_at"].strftime("%Y-%m-%d %H:%M:%S")]],
                 "insp-summary")


def _image(kept: dict[str, Any] | None) -> tuple[bytes | None, tuple[int, int] | None]:
    """The kept input image as PNG bytes and its size, when the input is an image."""
    if not kept or kept["kind"] != "image":
        return None, None
    try:
        image = decode_image(kept["data"])
    except AbvocError:
        return None, None
    return encode_png(image), (int(image.shape[1]), int(image.shape[0]))


def _ocr(stages: dict[str, Any], kept: dict[str, Any] | None = None) -> list[Component]:
    rec = stages.get("recognizer") or {}
    classes, scores = rec.get("classes") or [], rec.get("scores") or []
    runner = rec.get("runner_up") or []
    symbols = [[i, c, fmt(scores[i]) if i < len(scores) else "–",
                " ".join(f"{r[0]} {r[1]:.2f}" for r in runner[i:i + 1]) if runner else ""]
               for i, c in enumerate(classes)]
    relations = [[i, classes[i] if i < len(classes) else "?",
                  "root" if r[0] is None or r[0] < 0 else f"{r[0]}: "
                  + (classes[r[0]] if r[0] < len(classes) else "?"), r[1], fmt(r[2])]
                 for i, r in enumerate((stages.get("aligner") or {}).get("relations") or [])]
    return [
        html.H3("Detector"),
        dcc.Graph(id="insp-boxes", figure=plots.detections(stages, *_image(kept))),
        html.H3("Recognizer"),
        table(["symbol", "class", "score", "runner-up"], symbols, "insp-recognizer"),
        html.H3("Aligner"),
        table(["symbol", "class", "parent", "relation", "probability"], relations,
              "insp-aligner"),
        html.H3("Converter"),
        html.Pre((stages.get("converter") or {}).get("latex", "–"), id="insp-converter"),
    ]


def _corrections(f: dict[str, Any]) -> Component:
    if not f["corrections"]:
        return html.P("No correction.", id="insp-corrections")
    return table(["at (UTC)", "correction", "comment", "rating"],
                 [[c["at"].strftime("%Y-%m-%d %H:%M:%S"), answer_text(c["correction"]),
                   c["comment"] or "",
                   c["rating"]] for c in f["corrections"]], "insp-corrections")


def _blame(f: dict[str, Any]) -> Component:
    # Each queue's item (one label may stand in a verification and a stage queue both).
    # Each label and who gave it isolated: a U+202E in a text label reversed the rest of the
    # line, the annotators' names, the queues and the other labels with it.
    labels = ", ".join(f"{isolate(answer_text(lb['label']))} "
                       f"({isolate(lb['annotator'] or 'annotator')}, "
                       f"{isolate(lb.get('queue') or 'a queue')})" for lb in f["labels"])
    blamed = f["blamed"]
    verdict = ("no truth known yet" if f["truth"] is None and f.get("verified") is None else
               "no stages to blame" if blamed is None else
               "the output is right" if blamed == "correct" else f"stage blamed: {blamed}")
    return html.Ul(id="insp-blame", children=[
        html.Li(f"Truth (from corrections): {answer_text(f['truth'])}"),
        html.Li(f"Relabels: {labels or '–'}"),
        *([html.Li(f"Verified label of its input (the truth judged): "
                   f"{answer_text(f['verified'])}")] if f.get("verified") is not None else []),
        html.Li(html.B(verdict))])


def _id(value: Any) -> str:
    """The id typed or linked, whole: one past MAX_ID is shown as too long, not cut (a cut id
    was looked up and reported missing, naming an id nobody sent)."""
    if value is not None and not isinstance(value, str):
        raise AbvocError("'prediction id' must be text")
    return (value or "").strip()


def register(app: Dash) -> None:
    @app.callback(Output("insp-id", "value"), Input("url", "search"))
    @require_role(ROLES)
    def _from_link(search: Any) -> str:
        if search is not None and not isinstance(search, str):
            raise AbvocError("'url.search' must be text")
        found = parse_qs((search or "").lstrip("?")).get("id", [""])
        return _id(found[0])

    @app.callback(Output("insp-body", "children"), Input("insp-id", "value"),
                  Input("insp-go", "n_clicks"))
    @require_role(ROLES)
    def _body(value: Any, _clicks: Any) -> Component:
        prediction_id = _id(value)
        found = feeds.prediction(data.store(), prediction_id) \
            if prediction_id and len(prediction_id) <= MAX_ID else None
        return body(found, prediction_id)


PAGE = Page(path="inspector", title="Inspector", roles=ROLES, layout=layout, register=register)
