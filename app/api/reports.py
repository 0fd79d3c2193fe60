"""GET /v1/experiments/{id}/results (and results.csv, its comparisons as a table) and
/divergence (and divergence.csv, its slice rows or findings): the evaluation engine's
reports."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.orm import Session

from app.api.experiments import EXP
from app.auth import require
from app.openapi.parts import SHARES_FROM_ZERO
from core.errors import AbvocError
from core.query import plain_decimal, whole_number
from core.text import quoted
from core.times import query_window
from evaluation.divergence import divergence_report, divergence_with_stages
from evaluation.results import experiment_results
from evaluation.results_csv import asked_table, attachment, comparisons_csv, divergence_csv
from evaluation.slices import DEFAULT_MAX_SLICES, MAX_SLICES_LIMIT
from evaluation.unit_recount import recount_affordable

bp = Blueprint("reports", __name__)


def _share(name: str, default: float) -> float:
    """A share from the query, below 1 and above 0, or from 0 where the document says so (a
    tolerance of 0 forgives no gap, where an alpha of 0 would flag nothing)."""
    zero = name in SHARES_FROM_ZERO
    raw = request.args.get(name)
    if raw is None:
        return default
    said = f"'{name}' must be a number {'at least 0' if zero else 'above 0'} and below 1"
    # Plain decimals only: float() also reads '1_0e-2' as 0.1 and digits of other scripts.
    value = plain_decimal(raw)
    if value is None:
        raise AbvocError(said + f", written in plain digits (e.g. 0.05); got {quoted(raw[:40])}")
    above_low = value >= 0 if zero else value > 0  # nan is neither
    if not (above_low and value < 1):
        raise AbvocError(said)
    return value


def _scope() -> dict[str, Any]:
    """The report's window and slice limit from the query (a 400 naming any unknown or bad
    parameter: a typo must not silently give the whole experiment)."""
    since, until = query_window(request.args)
    raw = request.args.get("max_slices", str(DEFAULT_MAX_SLICES))
    max_slices = whole_number(raw, 0, MAX_SLICES_LIMIT)
    if max_slices is None:
        raise AbvocError(f"'max_slices' must be a whole number from 0 to {MAX_SLICES_LIMIT}")
    recount = request.args.get("recount_units")
    if recount not in (None, "true", "false"):
        raise AbvocError("'recount_units' must be true or false")
    return {"since": since, "until": until, "max_slices": max_slices, "recount_units": recount}


def _options(session: Session, experiment_id: int, scope: dict[str, Any]) -> dict[str, Any]:
    """The report's options, the window's units recounted from its stored predictions (a pass
    over them) as `recount_units` says, else where the window is small enough to do it on a
    live read, as the dashboard does; without a window the unit sums cover the experiment."""
    options = {k: v for k, v in scope.items() if k != "recount_units"}
    since, until, asked = scope["since"], scope["until"], scope["recount_units"]
    recount = asked == "true" or asked is None and (since or until) is not None \
        and recount_affordable(session, since, until, experiment_id)
    return {**options, "recounts": {} if recount else None}


@bp.get(f"/v1/experiments/{EXP}/results")
@require("admin")
def results(experiment_id: int):  # noqa: ANN201
    scope = _scope()
    with current_app.extensions["abvoc"].db.reading() as s:
        return jsonify(experiment_results(s, experiment_id, **_options(s, experiment_id, scope)))


@bp.get(f"/v1/experiments/{EXP}/results.csv")
@require("admin")
def results_csv(experiment_id: int):  # noqa: ANN201
    """The comparisons of /results, one row each, with the same query parameters."""
    scope = _scope()
    with current_app.extensions["abvoc"].db.reading() as s:
        report = experiment_results(s, experiment_id, **_options(s, experiment_id, scope))
    return Response(comparisons_csv(report), mimetype="text/csv",
                    headers=attachment(experiment_id))


@bp.get(f"/v1/experiments/{EXP}/divergence")
@require("admin")
def divergence(experiment_id: int):  # noqa: ANN201
    scope = _scope()
    alpha, tolerance = _share("alpha", 0.05), _share("tolerance", 0.02)
    with current_app.extensions["abvoc"].db.reading() as s:
        return jsonify(divergence_with_stages(s, experiment_id, alpha=alpha, tolerance=tolerance,
                                              **_options(s, experiment_id, scope)))


@bp.get(f"/v1/experiments/{EXP}/divergence.csv")
@require("admin")
def divergence_table(experiment_id: int):  # noqa: ANN201
    """The slice rows (default) or the findings of /divergence, one row each, with the same
    query parameters and `table`."""
    scope = _scope()
    alpha, tolerance = _share("alpha", 0.05), _share("tolerance", 0.02)
    which = asked_table(request.args.get("table"))
    with current_app.extensions["abvoc"].db.reading() as s:
        report = divergence_report(s, experiment_id, alpha=alpha, tolerance=tolerance,
                                   **_options(s, experiment_id, scope))
    return Response(divergence_csv(report, which), mimetype="text/csv",
                    headers=attachment(experiment_id, f"divergence-{which}"))
