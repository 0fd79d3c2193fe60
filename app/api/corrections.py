"""POST /v1/corrections: a customer's correction of a prediction (the VOC channel)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.auth import require
from core.errors import AbvocError
from feedback.corrections import submit_correction

bp = Blueprint("corrections", __name__)


@bp.post("/v1/corrections")
@require("correct")
def correct():  # noqa: ANN201
    body = request.get_json(silent=True)
    if body is None:
        raise AbvocError("send a JSON object with prediction_id, receipt and corrected_output")
    services = current_app.extensions["abvoc"]
    accepted = submit_correction(services.db, services.settings, body,
                                 request.headers.get("Idempotency-Key"))
    return jsonify(accepted), 202
