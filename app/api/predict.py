"""POST /v1/predict: an image and a unit id (`unit_id`, or the X-Abvoc-Unit-Id header) in, a
LaTeX answer, a prediction id and a receipt out.

Which candidate served (and the arm and experiment) is shown only to admin keys. Admin keys may
also force an arm with the `X-Abvoc-Force-Arm` header, for QA.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from flask import Blueprint, jsonify, request

from app.auth import current_scopes, require
from app.inputs import check_text
from app.read_headers import FORCE_HEADER, UNIT_HEADER
from app.serving import serve
from app.unit_ids import request_unit
from core.errors import AbvocError, refuse_unknown
from serving.bundles.offline_metrics import slice_problem
from serving.images import decode_image, input_hash
from serving.predict import PredictRequest

bp = Blueprint("predict", __name__)
PUBLIC_FIELDS = ("prediction_id", "output", "confidence", "receipt")


def text_field(value: object, name: str, limit: int, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise AbvocError(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise AbvocError(f"{name} must be a string of at most {limit} characters")
    return value


def forced_arm(value: str | None, admin: bool) -> str | None:
    """The arm an admin key forces with the FORCE_HEADER (None: not sent), percent-encoded UTF-8
    decoded: a header value that is not ASCII never reaches the app intact (app.read_headers),
    so the arm 'trésor' is sent as tr%C3%A9sor; arm names hold no '%', so an ASCII name reads
    as itself."""
    if value is None:
        return None
    if not admin:
        raise AbvocError(f"the {FORCE_HEADER} header needs an admin key", status=403)
    try:
        name = unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise AbvocError(f"the {FORCE_HEADER} header's %-escapes are not UTF-8: send an arm name "
                         "that is not ASCII percent-encoded as UTF-8 (trésor: tr%C3%A9sor)") \
            from None
    check_text(name, f"the {FORCE_HEADER} header")
    return text_field(name, f"the {FORCE_HEADER} header", 100)


def slice_field(value: object) -> str | None:
    """A request's `slice` (None: none given), held to the slice names' one rule: `all` was
    folded into the whole's row, and control or bidi characters broke the reports' tables."""
    slice_ = text_field(value, "'slice'", 100)
    if slice_ is not None and (problem := slice_problem(slice_)) is not None:
        raise AbvocError(f"'slice' {problem}")
    return slice_


FIELDS = frozenset({"image_base64", "unit_id", "scope", "slice"})


def read_image_request(allowed: frozenset[str] = FIELDS) -> tuple[bytes, dict]:
    """The image's bytes and the other fields, from multipart (`image`) or JSON
    (`image_base64`); JSON fields outside `allowed` are refused."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise AbvocError("multipart requests need a file field named 'image'")
        # The same rule as for JSON: a misspelt `scpoe` would be served by scope `default`.
        form = allowed - {"image_base64"}
        refuse_unknown([*request.form, *request.files], {*form, "image"},
                       known="a multipart request has the file 'image' and the fields:")
        return upload.read(), request.form.to_dict()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise AbvocError("send multipart/form-data with an 'image' file, or JSON with "
                         "'image_base64' and 'unit_id'")
    refuse_unknown(body, allowed)
    encoded = body.get("image_base64")
    if not isinstance(encoded, str) or not encoded:
        raise AbvocError("'image_base64' must be a base64 string of a PNG or JPEG image")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AbvocError(f"'image_base64' is not valid base64: {exc}") from exc
    return data, body


@bp.post("/v1/predict")
@require("predict")
def predict():  # noqa: ANN201
    data, fields = read_image_request()
    # Optional here: the router asks for it unless the scope's experiment has unit `request`.
    unit_id = request_unit(fields.get("unit_id"), "'unit_id'",
                           request.headers.get(UNIT_HEADER))
    scope = text_field(fields.get("scope"), "'scope'", 100) or "default"
    slice_ = slice_field(fields.get("slice"))
    admin = "admin" in current_scopes()
    force = forced_arm(request.headers.get(FORCE_HEADER), admin)
    image = decode_image(data)
    answer = serve(PredictRequest(payload=image, input_hash=input_hash(data), unit_id=unit_id,
                                  scope=scope, slice=slice_, force_arm=force,
                                  raw_input=data))
    body = {k: answer[k] for k in PUBLIC_FIELDS}
    if admin:
        body.update({k: answer[k] for k in ("candidate", "arm", "experiment_id", "slice",
                                            "latency_ms")})
        if answer["excluded"]:
            body["excluded"] = answer["excluded"]
    return jsonify(body)
