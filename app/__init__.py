"""The Flask application factory and the `abvoc` command line."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, jsonify, redirect, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from app import inputs, path_ints
from app.compressed import InflateBodies, compress_answers
from core.errors import AbvocError
from core.quiet_log import warn_now_and_then
from core.settings import Settings, load_settings
from core.startup import Services, connect
from core.store.db import store_unreachable

_ADDRESS = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
V2_ROUTES = ("no such Open Inference Protocol route; abvoc serves GET /v2, /v2/health/live, "
             "/v2/health/ready, /v2/models/{scope} and /v2/models/{scope}/ready, and POST "
             "/v2/models/{scope}/infer (the model name is the experiment's traffic scope)")


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Build the app; tests pass their own settings or ready-made services."""
    app = Flask(__name__)
    path_ints.init_app(app)
    if test_config:
        app.config.update(test_config)
    if services is None:
        services = connect(settings or load_settings())
    app.extensions["abvoc"] = services
    _register_errors(app)
    compress_answers(app)

    from app import metrics, query_params
    from app.api import (
        candidates,
        corrections,
        experiments,
        health,
        meta,
        outcomes,
        pages,
        predict,
        relabel,
        reports,
        v2,
        weekly_reports,
    )
    from app.api.v2_lane import V2Lane
    from app.auth import KeyCache
    from app.rate_limit import KeyRateLimit
    from app.serving import Serving

    app.extensions["abvoc_keys"] = KeyCache(services.db)
    if services.settings.rate_limit:
        app.extensions["abvoc_rate"] = KeyRateLimit(services.settings.rate_limit)
    app.extensions["abvoc_serving"] = Serving.build(
        services, router_refresh_s=app.config.get("ROUTER_REFRESH_S", 1.0)
    )
    metrics.init_app(app)
    for module in (health, meta, predict, pages, corrections, outcomes, experiments, reports,
                   candidates, v2, relabel, weekly_reports):
        app.register_blueprint(module.bp)
    query_params.init_app(app)
    _mount_dashboard(app, services)
    # Inference bodies are the largest a route takes; each route checks its own limit after.
    # Well-formed inference requests take the V2 lane around Flask (app/api/v2_lane.py).
    app.wsgi_app = InflateBodies(V2Lane(app, app.wsgi_app),  # type: ignore[method-assign]
                                 v2.MAX_BODY_BYTES)
    return app


def create_dashboard_app(settings: Settings | None = None,
                         services: Services | None = None) -> Flask:
    """The dashboard alone (`abvoc dashboard`): the login and the Dash pages over the store,
    without the prediction API and without loading any candidate."""
    app = Flask(__name__)
    path_ints.init_app(app)  # the CSV downloads' paths take the row ids the API's do
    if services is None:
        services = connect(settings or load_settings())
    app.extensions["abvoc"] = services
    _register_errors(app)
    compress_answers(app)
    _mount_dashboard(app, services)
    return app


def _mount_dashboard(app: Flask, services: Services) -> None:
    from app.auth import KeyCache
    from dashboards import init_app as init_dashboard
    from dashboards.auth import PREFIX

    keys = app.extensions.setdefault("abvoc_keys", KeyCache(services.db))
    app.extensions["abvoc_dash"] = init_dashboard(app, keys, services.settings)
    # The bare address is where a browser goes first: it answered a JSON 404 there.
    app.add_url_rule("/", "root", lambda: redirect(PREFIX))


def close_app(app: Flask) -> None:
    """Stop what the app started (shadow pool, loaded candidates) and close its services."""
    serving = app.extensions.get("abvoc_serving")
    if serving is not None:
        serving.close()
    app.extensions["abvoc"].close()


def services_of(app: Flask) -> Services:
    return app.extensions["abvoc"]


def _without_addresses(message: str) -> str:
    """A last guard: no Python object repr with a memory address leaves in an error body."""
    return _ADDRESS.sub("<object>", message)


def _register_errors(app: Flask) -> None:
    inputs.init_app(app)

    @app.errorhandler(AbvocError)
    def _abvoc_error(exc: AbvocError):  # noqa: ANN202
        body = exc.to_dict()
        body["error"] = _without_addresses(body["error"])
        return jsonify(body), exc.status, list(exc.headers)

    @app.errorhandler(sa_exc.SQLAlchemyError)
    def _store_error(exc: sa_exc.SQLAlchemyError):  # noqa: ANN202
        # A store that is restarting or unreachable is the service's state, not a bug: 503 with
        # a hint to retry. Anything else from the store is a real server error.
        if not store_unreachable(exc):
            raise exc
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        warn_now_and_then(app.logger, f"store unavailable: {type(exc).__name__}: {cause}")
        body = {"error": "the store is unavailable (restarting or unreachable); try again "
                         "shortly", "status": 503}
        return jsonify(body), 503, [("Retry-After", "2")]

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # noqa: ANN202
        # Keep the exception's headers (Allow on a 405), not its HTML content type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        said = exc.description or exc.name
        if exc.code == 404 and request.path.startswith("/v2"):
            said = V2_ROUTES  # a Triton or KServe client asking for a route abvoc has not
        body = {"error": _without_addresses(said), "status": exc.code}
        return jsonify(body), exc.code, headers
