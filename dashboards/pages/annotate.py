"""The Annotate page: claim the next relabel item of a queue, see what the model saw and said
(the input, the served output, shadows' outputs, the customer's correction), label it with an
editor fitting the output type, then submit, skip or flag it; the next item comes at once.

It calls the same :mod:`feedback.annotation` functions as the relabel API (``/v1/relabel``), as
the session's key (``name:prefix``), so a lease, a 409 for a lost lease and a 400 for a label
of the wrong form behave alike; here they show as a message. User text is only ever text.
"""

from __future__ import annotations

import json
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from core.errors import AbvocError
from core.relabel import queue_problem
from dashboards import data
from dashboards.access import require_role, whole_number
from dashboards.auth import current_identity
from dashboards.kept_input import kept_input
from dashboards.latex_preview import render
from dashboards.pages._page import Page
from dashboards.tables import answer_text
from evaluation.relabel_enqueue import route_label
from feedback import annotation

ROLES = frozenset({"annotator", "admin"})
ANY = "any"
LABEL = "ann-label"
NO_TEXT = "ann-no-text"
"""A text item's tick for "the input holds no text": the label is then the empty string, which
an empty editor is not taken for (an empty field is more often a label not yet typed)."""


def layout() -> Component:
    return html.Div([
        html.H2("Annotate"),
        html.Div(className="controls", children=[
            html.Label(["Queue", dcc.Dropdown(id="ann-queue",
                                              options=queue_options(data.store(),
                                                                    current_identity()),
                                              value=ANY, clearable=False)],
                       className="control wide"),
            html.Button("Claim next", id="ann-claim", n_clicks=0, className="claim"),
        ]),
        html.Div(id="ann-message", className="message"),
        dcc.Store(id="ann-item"),
        html.Div(id="ann-view"),
        html.Div(id="ann-editor"),
        html.Div(id="ann-preview"),
        html.Div(id="ann-actions", className="controls", children=[
            html.Button("Submit", id="ann-submit", n_clicks=0),
            html.Button("Skip", id="ann-skip", n_clicks=0),
            dcc.Input(id="ann-reason", type="text", maxLength=500, debounce=False,
                      placeholder="why flag it (unreadable, wrong candidate ...)",
                      className="wide"),
            html.Button("Flag", id="ann-flag", n_clicks=0),
        ]),
    ])


def queue_options(db: Any, who: str) -> list[dict[str, str]]:
    """Any queue, then each queue with the items a claim by `who` could get now
    (:func:`feedback.annotation.claimable_counts`: leases run out count, items whose input is
    gone or that `who` labeled or skipped do not; the statuses' open count said "0 open" of a
    queue with items to claim); a stored name that is no queue abvoc fills, e.g. from an old
    import, is not offered: claiming from it would be refused."""
    figures = annotation.queue_figures(db)["queues"]
    counts = annotation.claimable_counts(db, who)
    return [{"label": "any queue", "value": ANY}] + [
        {"label": f"{q['queue']} ({counts.get(q['queue'], 0)} open)", "value": q["queue"]}
        for q in figures if queue_problem(q["queue"]) is None]


def as_text(value: Any, kind: str | None) -> str:
    """An answer of the item's type as text: strings as they are (a json string as JSON, so
    "12" and 12 look different), numbers and JSON as JSON."""
    if isinstance(value, str) and kind != "json":
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _output(value: Any, id_: str, kind: str | None) -> Component:
    """An answer or a correction; "–" where there is none (a failed answer), and the empty text
    said in words, not shown as an empty box."""
    shown = answer_text(value) if value is None or (value == "" and kind != "json") \
        else as_text(value, kind)
    return html.Pre(shown, id=id_, className="output")


def view(item: dict[str, Any] | None) -> Component:
    """What the annotator reads before labeling: the input and every answer given to it."""
    if item is None:
        return html.P("No item to label in this queue now.", id="ann-empty")
    lease = item.get("lease") or {}
    parts: list[Component] = [
        html.P([f"Item #{item['id']} in ", html.B(item["queue"]),
                f" (reasons: {', '.join(item['reasons']) or 'none'}; priority "
                f"{item['priority']:g}; candidate {item['candidate'] or '–'}; slice "
                f"{item['slice'] or '–'}; output type {item['output_type']}). Leased to you "
                f"until {(lease.get('until') or '–')[:19].replace('T', ' ')} UTC."],
               id="ann-summary")]
    parts.append(kept_input(item.get("input"), "ann-input"))
    parts += stage_samples(item.get("stage_samples") or [])
    served, kind = item.get("served"), item.get("output_type")
    parts += [html.H4("Served output"),
              _output(served and served["output"], "ann-served", kind)]
    for i, shadow in enumerate(item.get("shadows") or []):
        parts += [html.H4(f"Shadow {shadow['candidate']}"),
                  _output(shadow["output"], f"ann-shadow-{i}", kind)]
    correction = item.get("correction")
    parts.append(html.H4("Customer's correction"))
    if correction is None:
        parts.append(html.P("None.", id="ann-correction"))
    else:
        parts += [_output(correction["corrected_output"], "ann-correction", kind),
                  html.P(_said(correction), id="ann-correction-note")]
    for i, later in enumerate(item.get("later_corrections") or []):
        parts += [html.H4(f"A later correction ({i + 2})"),
                  _output(later["corrected_output"], f"ann-correction-{i + 2}", kind),
                  html.P(_said(later), id=f"ann-correction-{i + 2}-note")]
    for i, other in enumerate(item.get("other_corrections") or []):
        parts += [html.H4(f"A correction of the same input on prediction "
                          f"{other['prediction_id']}"),
                  _output(other["corrected_output"], f"ann-other-correction-{i}", kind),
                  html.P(_said(other), id=f"ann-other-correction-{i}-note")]
    return html.Div(parts)


def _said(correction: dict[str, Any]) -> str:
    """A correction's rating and comment, where the customer gave them."""
    extra = [f"rating {correction['rating']}"] if correction.get("rating") is not None else []
    if correction.get("comment"):
        extra.append(f"comment: {correction['comment']}")
    return "; ".join(extra)


def stage_samples(samples: list[dict[str, Any]]) -> list[Component]:
    """A stage item's samples: each symbol crop with the class served and the class the truth
    gives it (the label's LaTeX decides them), the relation sample, or why there is none."""
    if not samples:
        return []
    parts: list[Component] = [html.H4("For the blamed stage's dataset")]
    for k, sample in enumerate(samples):
        if sample["kind"] == "crop":
            image = sample["image"]
            parts.append(html.Figure([
                html.Img(src=f"data:{image['media_type']};base64,{image['data_base64']}",
                         alt=f"symbol {sample['symbol']}", style={
                             "height": "48px", "border": "1px solid #ccc",
                             "background": "#fff"}),
                html.Figcaption(f"symbol {sample['symbol']}: read as {sample['predicted']}, "
                                f"truth {sample['label']}")],
                id=f"ann-crop-{k}", style={"display": "inline-block", "margin": "4px"}))
        elif sample["kind"] == "relations":
            rel = sample["sample"]
            rows = [f"{c}: {r[1]} of {r[0]}" for c, r in zip(rel["classes"], rel["relations"],
                                                             strict=False)]
            parts.append(html.Pre("\n".join(rows), id=f"ann-relations-{k}"))
        else:
            parts.append(html.P(sample.get("reason") or "No sample.", id=f"ann-whole-{k}"))
    return parts


def _start(item: dict[str, Any]) -> Any:
    """The editor's first value: the customer's correction, else the served output (a value
    of the item's type; None when there is neither)."""
    correction, served = item.get("correction"), item.get("served")
    if correction is not None:
        return correction["corrected_output"]
    return None if served is None else served["output"]


def _number(start: Any) -> float | None:
    """The number editor's first value (an item held from before answers were typed has it as
    text); None when there is none."""
    if isinstance(start, bool) or not isinstance(start, int | float | str):
        return None
    try:
        return float(start)
    except ValueError:
        return None


def editor(item: dict[str, Any] | None) -> Component:
    """An input fitting the output type; its id says the type (``{"type": LABEL, "kind": t}``)."""
    if item is None:
        return html.Div()
    kind, start = item["output_type"], _start(item)
    id_ = {"type": LABEL, "kind": kind}
    if kind == "label":
        classes = item.get("classes") or []
        field: Component = dcc.RadioItems(
            id=id_, options=[{"label": c, "value": c} for c in classes],
            value=start if start in classes else None, inline=True)
    elif kind == "number":
        field = dcc.Input(id=id_, type="number", value=_number(start), debounce=False)
    elif kind == "json":
        field = dcc.Textarea(id=id_, value="" if start is None else as_text(start, kind),
                             style={"width": "100%", "height": "8em"})
    else:  # latex, text
        field = dcc.Input(id=id_, type="text", value=start if isinstance(start, str) else "",
                          debounce=False,
                          style={"width": "100%", "fontFamily": "monospace"})
    if kind == "text":
        blank = dcc.Checklist(id={"type": NO_TEXT, "kind": kind},
                              options=[{"label": " the input holds no text", "value": "yes"}],
                              value=["yes"] if start == "" else [])
        return html.Div([html.H4(f"Your label ({kind})"), field, blank])
    return html.Div([html.H4(f"Your label ({kind})"), field])


def preview(kind: str | None, value: Any) -> Component:
    """The rendered formula under a LaTeX editor; nothing for other types."""
    if kind != "latex":
        return html.Div()
    shown = render(value if isinstance(value, str) else None)
    if shown.src is None:
        return html.P(shown.problem, id="ann-preview-problem", className="alert")
    return html.Img(src=shown.src, id="ann-preview-img", alt="the formula rendered",
                    style={"background": "#fff", "padding": "8px", "margin": "6px 0"})


def label_value(kind: str, raw: Any, no_text: bool = False) -> Any:
    """The editor's value as the API's ``label`` field (JSON typed from its text); with
    `no_text` (a text item's tick), the empty text."""
    if no_text:
        if kind != "text":
            raise AbvocError("only a text item can be labeled as holding no text")
        if raw not in (None, ""):
            raise AbvocError("the label has text but is ticked as holding none: clear one")
        return ""
    if raw is None or raw == "":
        hint = ", tick 'the input holds no text'" if kind == "text" else ""
        raise AbvocError(f"enter a label first (or skip the item{hint})")
    if kind == "json":
        try:
            return json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise AbvocError(f"the label is not valid JSON: {exc}") from None
        except RecursionError:  # the parser recurses once per level: checked_label says more
            raise AbvocError("the label is not valid JSON: it nests thousands of levels "
                             "deep") from None
    return raw


def held_item(item: Any) -> dict[str, Any] | None:
    """The held item as the page stored it (from a claim); 400 for anything else, since only a
    hand-made request sends another."""
    if item is None:
        return None
    if not isinstance(item, dict):
        raise AbvocError("the held item must be an object")
    if whole_number(item.get("id"), "the held item's id") is None or \
            not isinstance(item.get("output_type"), str):
        raise AbvocError("the held item must have a whole-number 'id' and an 'output_type'")
    return item


def act(db: Any, who: str, action: str, item: dict[str, Any] | None, value: Any,
        reason: str | None, no_text: bool = False) -> str:
    """Do ``action`` (submit, skip, flag) to the held item; what it did, for the message."""
    if item is None:
        raise AbvocError("claim an item first")
    item_id = int(item["id"])
    if action == "submit":
        result = annotation.submit(db, item_id, who,
                                   label_value(item["output_type"], value, no_text))
        if result["status"] == "done":
            with db.session() as s:
                route_label(s, item_id)
        return f"Item #{item_id} labeled ({result['status']})."
    if action == "skip":
        annotation.skip(db, item_id, who)
        return f"Item #{item_id} skipped."
    annotation.flag(db, item_id, who, (reason or "").strip())
    return f"Item #{item_id} flagged."


def step(db: Any, who: str, trigger: str, queue: str | None, item: dict[str, Any] | None,
         value: Any, reason: str | None,
         no_text: bool = False) -> tuple[dict[str, Any] | None, str, bool]:
    """One button press: the item now held, the message, and whether the item changed.

    A refused action (400, 409, 404) keeps the item and says why; a done one claims the next.
    """
    done = ""
    if trigger != "claim":
        try:
            done = act(db, who, trigger, item, value, reason, no_text)
        except AbvocError as exc:
            # The API's 409 names its claim endpoint; here the claim is a button.
            said = exc.message.replace("with POST /v1/relabel/claim", "with Claim next")
            return item, f"Not saved: {said}", False
    try:
        nxt, held = annotation.claim_or_held(db, who, None if queue in (None, ANY) else queue)
    except AbvocError as exc:
        return None, f"{done} Could not claim: {exc.message}".strip(), True
    if nxt is None:
        return None, f"{done} Nothing left to claim in this queue.".strip(), True
    if held:
        # A claim returns the lease the annotator still holds, whatever queue it asks for,
        # the page holding it or not (a reload forgets it): "Claimed" would present it as a
        # fresh item. A lease run out and taken afresh is a claim (the work was not kept).
        return nxt, (f"{done} You still hold item #{nxt['id']} ({nxt['queue']}): label, skip "
                     "or flag it first.").strip(), True
    return nxt, f"{done} Claimed item #{nxt['id']}.".strip(), True


def register(app: Dash) -> None:
    @app.callback(Output("ann-item", "data"), Output("ann-view", "children"),
                  Output("ann-editor", "children"), Output("ann-message", "children"),
                  Output("ann-reason", "value"),
                  Input("ann-claim", "n_clicks"), Input("ann-submit", "n_clicks"),
                  Input("ann-skip", "n_clicks"), Input("ann-flag", "n_clicks"),
                  State("ann-queue", "value"), State("ann-item", "data"),
                  State({"type": LABEL, "kind": ALL}, "value"), State("ann-reason", "value"),
                  State({"type": NO_TEXT, "kind": ALL}, "value"),
                  prevent_initial_call=True)
    @require_role(ROLES)
    def _step(_c: Any, _s: Any, _k: Any, _f: Any, queue: Any, item: Any, values: Any,
              reason: Any, ticks: Any) -> tuple[Any, ...]:
        trigger = str(ctx.triggered_id or "").removeprefix("ann-")
        if trigger not in ("claim", "submit", "skip", "flag"):
            raise AbvocError("unknown action")
        if queue is not None and not isinstance(queue, str) or \
                reason is not None and not isinstance(reason, str):
            raise AbvocError("'queue' and 'reason' must be text")
        value = values[0] if isinstance(values, list) and values else None
        no_text = isinstance(ticks, list) and bool(ticks) and ticks[0] == ["yes"]
        held, message, changed = step(data.store(), current_identity(), trigger, queue,
                                      held_item(item), value, reason, no_text)
        if not changed:
            return no_update, no_update, no_update, message, no_update
        return held, view(held), editor(held), message, ""

    @app.callback(Output("ann-queue", "options"), Input("ann-message", "children"),
                  prevent_initial_call=True)
    @require_role(ROLES)
    def _queues(_: Any) -> list[dict[str, str]]:
        # Every action writes a message: the "(N open)" counts follow the annotator's work
        # instead of staying as the page loaded them.
        return queue_options(data.store(), current_identity())

    @app.callback(Output("ann-preview", "children"),
                  Input({"type": LABEL, "kind": ALL}, "value"),
                  State({"type": LABEL, "kind": ALL}, "id"))
    @require_role(ROLES)
    def _preview(values: Any, ids: Any) -> Component:
        if not isinstance(values, list) or not values or not isinstance(ids, list):
            return html.Div()
        kind = ids[0].get("kind") if isinstance(ids[0], dict) else None
        return preview(kind, values[0])


PAGE = Page(path="annotate", title="Annotate", roles=ROLES, layout=layout, register=register)
