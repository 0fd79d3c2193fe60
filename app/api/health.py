"""Liveness and readiness: /healthz says the process runs; /readyz that its store and bus answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from core.bus import BusUnavailable
from core.errors import ConfigError
from core.outbox import pending_count
from core.store import schema

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    services = current_app.extensions["abvoc"]
    checks: dict[str, str] = {}
    try:
        services.db.check()
        checks["database"] = "ok" if schema.is_current(services.db) else "schema not migrated"
    except ConfigError as exc:
        checks["database"] = exc.message
    try:
        services.bus.check()
        checks["bus"] = "ok"
    except BusUnavailable as exc:
        checks["bus"] = str(exc)
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if checks["database"] == "ok":
        body["outbox_pending"] = pending_count(services.db)
    return jsonify(body), 200 if ready else 503
