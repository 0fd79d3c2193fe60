"""The Flask application factory and the `abvoc` command line."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from core.errors import AbvocError
from core.settings import Settings, load_settings
from core.startup import Services, connect


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Build the app; tests pass their own settings or ready-made services."""
    app = Flask(__name__)
    if test_config:
        app.config.update(test_config)
    if services is None:
        services = connect(settings or load_settings())
    app.extensions["abvoc"] = services
    _register_errors(app)

    from app import metrics
    from app.api import candidates, corrections, experiments, health, meta, predict, reports, v2
    from app.auth import KeyCache
    from app.serving import Serving

    app.extensions["abvoc_keys"] = KeyCache(services.db)
    app.extensions["abvoc_serving"] = Serving.build(
        services, router_refresh_s=app.config.get("ROUTER_REFRESH_S", 1.0)
    )
    metrics.init_app(app)
    for module in (health, meta, predict, corrections, experiments, reports, candidates, v2):
        app.register_blueprint(module.bp)
    return app


def close_app(app: Flask) -> None:
    """Stop what the app started (shadow pool, loaded candidates) and close its services."""
    app.extensions["abvoc_serving"].close()
    app.extensions["abvoc"].close()


def services_of(app: Flask) -> Services:
    return app.extensions["abvoc"]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul_characters() -> None:
    """Text with NUL characters cannot be stored (PostgreSQL refuses it): say so up front."""
    parts: list[Any] = [list(request.args.values()), request.view_args or {}]
    if request.is_json:
        parts.append(request.get_json(silent=True))
    elif request.mimetype == "multipart/form-data":
        parts.append(list(request.form.values()))
    if any(_has_nul(p) for p in parts):
        raise AbvocError("text fields must not contain NUL (\\u0000) characters")


def _register_errors(app: Flask) -> None:
    app.before_request(_refuse_nul_characters)

    @app.errorhandler(AbvocError)
    def _abvoc_error(exc: AbvocError):  # noqa: ANN202
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # noqa: ANN202
        return jsonify({"error": exc.description, "status": exc.code}), exc.code
