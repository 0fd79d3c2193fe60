"""POST /v1/outcomes: what happened after an answer, reported by the product; and the outcome
metrics an experiment defines (GET/POST /v1/experiments/{id}/metrics, admin)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.api.corrections import caller_id
from app.api.experiments import EXP
from app.auth import current_scopes, require
from core.errors import AbvocError
from evaluation.metric_definitions import define_metric, list_metrics, unit_outcomes
from feedback.outcomes import submit_outcome

bp = Blueprint("outcomes", __name__)


@bp.post("/v1/outcomes")
@require("outcome")
def record_outcome():  # noqa: ANN201
    body = request.get_json(silent=True)
    if body is None:
        raise AbvocError("send a JSON object with metric, value and either prediction_id and "
                         "receipt, or unit_id and experiment_id")
    services = current_app.extensions["abvoc"]
    idempotency_key = request.headers.get("Idempotency-Key")
    accepted = submit_outcome(services.db, services.settings, body, idempotency_key,
                              caller=caller_id() if idempotency_key is not None else None,
                              admin="admin" in current_scopes())
    return jsonify(accepted), 202


@bp.route(f"/v1/experiments/{EXP}/metrics", methods=["GET", "POST"])
@require("admin")
def experiment_metrics(experiment_id: int):  # noqa: ANN201
    # One rule for both methods: with two, werkzeug answers 405 rather than 404 to a POST on an
    # id the converter refuses (0, or past 64 bits).
    db = current_app.extensions["abvoc"].db
    if request.method == "GET":
        return jsonify({"metrics": list_metrics(db, experiment_id)})
    body = request.get_json(silent=True)
    if body is None:
        raise AbvocError("send the metric as a JSON object with name, kind and direction")
    defined, created = define_metric(db, experiment_id, body)
    return jsonify(defined), 201 if created else 200


@bp.get(f"/v1/experiments/{EXP}/unit-outcomes")
@require("admin")
def counted_unit_outcomes(experiment_id: int):  # noqa: ANN201
    """One unit's outcomes as the worker has counted them (see unit_outcomes)."""
    db = current_app.extensions["abvoc"].db
    return jsonify(unit_outcomes(db, experiment_id, request.args.get("unit_id", "")))
