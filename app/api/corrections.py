"""POST /v1/corrections: a customer's correction of a prediction (the VOC channel)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.auth import Unauthorized, presented_key, require
from core.errors import AbvocError
from feedback.corrections import submit_correction

bp = Blueprint("corrections", __name__)


def caller_id() -> int:
    """The id of the API key that sent this request: an Idempotency-Key is that key's own, so
    another client can neither learn it was used nor claim it first."""
    key = presented_key()
    found = current_app.extensions["abvoc_keys"].identify(key) if key else None
    if found is None:  # revoked between the scope check and now
        raise Unauthorized("the API key is unknown or revoked")
    return found[0]


@bp.post("/v1/corrections")
@require("correct")
def correct():  # noqa: ANN201
    body = request.get_json(silent=True)
    if body is None:
        raise AbvocError("send a JSON object with prediction_id, receipt and corrected_output")
    services = current_app.extensions["abvoc"]
    idempotency_key = request.headers.get("Idempotency-Key")
    accepted = submit_correction(services.db, services.settings, body, idempotency_key,
                                 caller=caller_id() if idempotency_key else None)
    return jsonify(accepted), 202
