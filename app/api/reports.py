"""GET /v1/experiments/{id}/results and /divergence: the evaluation engine's reports."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.api.experiments import EXP
from app.auth import require
from core.errors import AbvocError
from evaluation.divergence import divergence_report
from evaluation.results import experiment_results
from evaluation.stage_blame import stage_attribution

bp = Blueprint("reports", __name__)


def _share(name: str, default: float) -> float:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise AbvocError(f"'{name}' must be a number between 0 and 1") from exc
    if not 0 < value < 1:
        raise AbvocError(f"'{name}' must be a number between 0 and 1")
    return value


@bp.get(f"/v1/experiments/{EXP}/results")
@require("admin")
def results(experiment_id: int):  # noqa: ANN201
    with current_app.extensions["abvoc"].db.reading() as s:
        return jsonify(experiment_results(s, experiment_id))


@bp.get(f"/v1/experiments/{EXP}/divergence")
@require("admin")
def divergence(experiment_id: int):  # noqa: ANN201
    alpha, tolerance = _share("alpha", 0.05), _share("tolerance", 0.02)
    with current_app.extensions["abvoc"].db.reading() as s:
        report = divergence_report(s, experiment_id, alpha=alpha, tolerance=tolerance)
        report["stage_attribution"] = stage_attribution(s, experiment_id)
        return jsonify(report)
