"""POST /v1/pages: a page of several formulas in; each formula's box and LaTeX out.

The page is routed on its own scope (`page_scope`, default "pages") to an extraction candidate
(a `json` candidate answering boxes), as any prediction is: its own arms, shadows and guardrails,
its own prediction id and receipt. Each formula is cut out of the cleaned page and routed on
`formula_scope` (default "default") to an OCR candidate: a prediction of its own, with its own
id and receipt, so a customer corrects one formula at a time. A formula's prediction records
where it came from (the page's prediction id, its box, the extraction candidate) beside the OCR
stages. A missed or split formula is reported as a correction of the page's prediction: the
page's boxes as they should be (`workloads.ocr.pages.reading.reported_boxes` builds them), which
stage attribution lays at the extraction's door.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.api.predict import FIELDS, read_image_request, slice_field, text_field
from app.auth import current_scopes, require
from app.read_headers import UNIT_HEADER
from app.serving import serve
from app.unit_ids import request_unit
from core.errors import AbvocError
from serving.images import PAGE, decode_image, encode_png, input_hash
from serving.predict import SCOPE_REMEDY, CandidateFailed, PredictRequest

bp = Blueprint("pages", __name__)
PAGE_FIELDS = frozenset({*FIELDS, "page_scope", "formula_scope"}) - {"scope"}
MAX_FORMULAS = 100
# A page scope nothing serves: ABVOC_DEFAULT_CANDIDATE cannot help there (it names the OCR
# candidate formulas default to, which answers no boxes).
PAGE_REMEDY = ("train the extraction candidates (`abvoc pages train`) and start an experiment "
               "on that scope, or send a 'page_scope' that names one (e.g. 'pages-xycut')")


# A page's image (serving.images.PAGE, up to 12 MiB) as base64 in JSON, with its fields.
PAGE_BODY_BYTES = 17 << 20


@bp.url_value_preprocessor
def _bound_body(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A page may be larger than a formula (Flask runs this before the size check every
    request gets)."""
    if endpoint == "pages.read_page":
        request.max_content_length = PAGE_BODY_BYTES


@bp.post("/v1/pages")
@require("predict")
def read_page():  # noqa: ANN201
    from workloads.ocr.pages.reading import (
        cut_formulas,
        formula_marks,
        page_marks_problem,
        unreadable,
    )

    data, fields = read_image_request(PAGE_FIELDS)
    # Optional here: the router asks for it unless the scope's experiment has unit `request`.
    unit_id = request_unit(fields.get("unit_id"), "'unit_id'",
                           request.headers.get(UNIT_HEADER))
    page_scope = text_field(fields.get("page_scope"), "'page_scope'", 100) or "pages"
    formula_scope = text_field(fields.get("formula_scope"), "'formula_scope'", 100) or "default"
    slice_ = slice_field(fields.get("slice"))
    admin = "admin" in current_scopes()
    image = decode_image(data, PAGE)
    # A scope routed to the wrong kind of candidate is refused before anything is recorded.
    _check_served(page_scope, unit_id, ("json",), "an extraction candidate (formula boxes)",
                  PAGE_REMEDY)
    _check_served(formula_scope, unit_id, ("latex", "text"), "an OCR candidate")
    page = serve(PredictRequest(payload=image, input_hash=input_hash(data), unit_id=unit_id,
                                scope=page_scope, slice=slice_, raw_input=data))
    boxes = page["output"]
    if not isinstance(boxes, list):
        raise AbvocError(f"the extraction candidate on scope {page_scope!r} answered "
                         f"{type(boxes).__name__}, not a list of formula boxes", status=502)
    if len(boxes) > MAX_FORMULAS:
        # The extraction answered and its prediction is recorded: its receipt goes back, so
        # the caller can still correct its boxes (as a failed prediction's does).
        raise AbvocError(f"the page holds {len(boxes)} formulas; at most {MAX_FORMULAS} are "
                         f"read per request: split the page (its prediction "
                         f"{page['prediction_id']}, the boxes found, was recorded)", status=413,
                         details={"prediction_id": page["prediction_id"],
                                  "receipt": page["receipt"]})
    cuts = cut_formulas(image, boxes)
    marks = formula_marks(cuts)  # every crop checked before any formula is served
    if (too_much := page_marks_problem(marks)) is not None:  # bounds the page's whole work
        raise AbvocError(f"{too_much} (its prediction {page['prediction_id']}, the boxes found, "
                         "was recorded)", status=413, details={
                             "prediction_id": page["prediction_id"], "receipt": page["receipt"]})
    formulas = []
    for (box, score, cut), count in zip(cuts, marks, strict=True):
        entry = {"box": list(box), "score": score}
        if (refused := unreadable(count)) is not None:  # not served: nothing recorded for it
            formulas.append({**entry, "error": refused, "status": 400})
            continue
        where = {"extraction": {"page_prediction_id": page["prediction_id"], "box": list(box),
                                "score": score, "candidate": page["candidate"]}}
        png = encode_png(cut)  # kept for annotators, as a formula image sent alone would be
        try:
            read = serve(PredictRequest(payload=cut, input_hash=input_hash(png), unit_id=unit_id,
                                        scope=formula_scope, slice=slice_, context=where,
                                        raw_input=png))
        except CandidateFailed as failed:  # recorded; the other formulas are still read
            formulas.append({**entry, "error": failed.message, "status": failed.status})
            continue
        entry.update({k: read[k] for k in ("prediction_id", "output", "confidence", "receipt")})
        if admin:
            entry.update(candidate=read["candidate"], arm=read["arm"])
        formulas.append(entry)
    body = {"page": {k: page[k] for k in ("prediction_id", "receipt", "confidence")},
            "boxes": boxes, "formulas": formulas}
    if admin:
        body["page"].update(candidate=page["candidate"], arm=page["arm"],
                            experiment_id=page["experiment_id"])
        if page["excluded"]:
            body["page"]["excluded"] = page["excluded"]
    return jsonify(body)


def _check_served(scope: str, unit_id: str | None, kinds: tuple[str, ...], wanted: str,
                  remedy: str = SCOPE_REMEDY) -> None:
    """409 unless the candidate this unit is routed to on `scope` answers one of `kinds`; a
    404 suggesting `remedy` where nothing serves it."""
    serving = current_app.extensions["abvoc_serving"]
    route = serving.router.route(scope, unit_id,
                                 partial(serving.predict.default_candidate, scope, remedy))
    kind = serving.pool.get(route.candidate, route.version).output_type
    if kind not in kinds:
        raise AbvocError(f"scope {scope!r} is served by a candidate answering {kind!r}: "
                         f"route it to {wanted}", status=409)
