"""The relabeling API: the annotators' queue (claim, view, label, skip, flag), the admin's review
and rules, and the agreement figures. Keys with the `annotate` scope label; `admin` keys also
resolve reviews and set the enqueue rules. The annotator is the key (`name:prefix`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.auth import current_identity, require
from app.inputs import optional_json
from app.path_ints import row_id
from core.errors import AbvocError, refuse_unknown
from core.ids import MAX_ROW_ID
from core.query import whole_number
from core.text import quoted_names
from evaluation.relabel_enqueue import route_label
from feedback import agreement, annotation, queue_listing, relabel_rules

bp = Blueprint("relabel", __name__)
ITEM = row_id("relabel item", "item_id")


def _db():  # noqa: ANN202
    return current_app.extensions["abvoc"].db


def _body(allowed: set[str], required: frozenset[str] = frozenset()) -> dict[str, Any]:
    body = optional_json()
    if not isinstance(body, dict):
        fields = f"with {quoted_names(sorted(allowed))} " if allowed else "(or no body) "
        raise AbvocError(f"send a JSON object {fields}(Content-Type: application/json)")
    refuse_unknown(body, allowed, none="this action takes no body")
    missing = sorted(required - set(body))
    if missing:
        raise AbvocError(f"missing field(s) {quoted_names(missing)}")
    return body


def _text(value: Any, name: str, limit: int = 100) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise AbvocError(f"'{name}' must be a string of 1 to {limit} characters")
    return value


def _query_int(name: str, low: int, high: int, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = whole_number(raw, low, high)
    if value is None:
        raise AbvocError(f"'{name}' must be an integer from {low} to {high}, in ASCII digits")
    return value


def _routed(result: dict[str, Any]) -> dict[str, Any]:
    """A done label of a staged answer also goes to the blamed stage's dataset."""
    if result["status"] == "done":
        with _db().session() as s:
            route_label(s, result["item_id"])
    return result


@bp.get("/v1/relabel/queues")
@require("annotate")
def queues():  # noqa: ANN201
    return jsonify(annotation.queue_figures(_db()))


@bp.post("/v1/relabel/claim")
@require("annotate")
def claim():  # noqa: ANN201
    body = _body({"queue", "lease_s"})
    lease = body.get("lease_s", annotation.LEASE_S)
    if isinstance(lease, bool) or not isinstance(lease, int) \
            or not 1 <= lease <= annotation.MAX_LEASE_S:
        raise AbvocError(f"'lease_s' must be an integer from 1 to {annotation.MAX_LEASE_S}")
    item = annotation.claim(_db(), current_identity(), _text(body.get("queue"), "queue"), lease)
    return jsonify({"item": item})


@bp.get(f"/v1/relabel/items/{ITEM}")
@require("annotate")
def show(item_id: int):  # noqa: ANN201
    return jsonify(annotation.show(_db(), item_id))


@bp.get("/v1/relabel/items")
@require("annotate")
def listing():  # noqa: ANN201
    status = request.args.get("status", "review")
    limit = _query_int("limit", 1, 500, 50)
    queue = _text(request.args.get("queue"), "queue")
    return jsonify({"items": queue_listing.listing(_db(), status, queue, limit or 50)})


@bp.post(f"/v1/relabel/items/{ITEM}/label")
@require("annotate")
def label(item_id: int):  # noqa: ANN201
    body = _body({"label"}, frozenset({"label"}))
    return jsonify(_routed(annotation.submit(_db(), item_id, current_identity(),
                                             body["label"])))


@bp.post(f"/v1/relabel/items/{ITEM}/skip")
@require("annotate")
def skip(item_id: int):  # noqa: ANN201
    _body(set())
    return jsonify(annotation.skip(_db(), item_id, current_identity()))


@bp.post(f"/v1/relabel/items/{ITEM}/flag")
@require("annotate")
def flag(item_id: int):  # noqa: ANN201
    body = _body({"reason"}, frozenset({"reason"}))
    return jsonify(annotation.flag(_db(), item_id, current_identity(), body["reason"]))


@bp.post(f"/v1/relabel/items/{ITEM}/resolve")
@require("admin")
def resolve(item_id: int):  # noqa: ANN201
    body = _body({"label"}, frozenset({"label"}))
    return jsonify(_routed(annotation.resolve(_db(), item_id, current_identity(),
                                              body["label"])))


@bp.get("/v1/relabel/agreement")
@require("annotate")
def agreement_report():  # noqa: ANN201
    return jsonify(agreement.agreement(_db(), _text(request.args.get("queue"), "queue")))


def _scope() -> tuple[int | None, str | None]:
    return (_query_int("experiment_id", 1, MAX_ROW_ID),
            _text(request.args.get("candidate"), "candidate"))


@bp.get("/v1/relabel/rules")
@require("admin")
def rules():  # noqa: ANN201
    experiment_id, candidate = _scope()
    return jsonify(relabel_rules.effective(_db(), experiment_id, candidate))


@bp.put("/v1/relabel/rules")
@require("admin")
def set_rules():  # noqa: ANN201
    experiment_id, candidate = _scope()
    body = request.get_json(silent=True)
    if body is None:
        raise AbvocError("send the rules as a JSON object")
    return jsonify(relabel_rules.put(_db(), body, experiment_id, candidate))
