"""/metrics names every candidate in its per-candidate series, which predict keys must not
learn: with ABVOC_METRICS_TOKEN it answers only that bearer token, in production without one
only admin keys; development stays open, and the probes stay open everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from app import close_app, create_app
from core.settings import Secret, Settings, load_settings
from tests.support.keys import bearer

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def make_app(settings: Settings) -> Iterator:
    made: list[Flask] = []

    def make(**changes: object) -> Flask:
        made.append(create_app(settings.with_overrides(**changes),
                               test_config={"TESTING": True}))
        return made[-1]

    yield make
    for app in made:
        close_app(app)


def _get(app: Flask, headers: dict[str, str] | None = None) -> int:
    return app.test_client().get("/metrics", headers=headers or {}).status_code


def test_with_a_token_only_that_bearer_token_is_let_in(make_app) -> None:  # noqa: ANN001
    app = make_app(metrics_token=Secret(TOKEN))
    assert _get(app) == 401
    assert _get(app, {"Authorization": "Bearer wrong"}) == 401
    assert _get(app, {"Authorization": TOKEN}) == 401  # not a bearer header
    assert _get(app, bearer(app, "predict")) == 401
    answer = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and b"abvoc_http_requests" in answer.data
    assert _get(app, {"Authorization": f"bearer {TOKEN}"}) == 200  # the scheme's case is free
    refused = app.test_client().get("/metrics")
    assert "ABVOC_METRICS_TOKEN" in refused.get_json()["error"]
    for probe in ("/healthz", "/openapi.json"):
        assert app.test_client().get(probe).status_code == 200, probe


def test_production_without_a_token_needs_an_admin_key(make_app) -> None:  # noqa: ANN001
    app = make_app(environment="production")
    assert _get(app) == 401
    assert _get(app, bearer(app, "predict")) == 403
    assert _get(app, bearer(app, "admin")) == 200
    assert app.test_client().get("/healthz").status_code == 200


def test_development_without_a_token_stays_open(make_app) -> None:  # noqa: ANN001
    assert _get(make_app()) == 200


def test_the_token_is_a_setting_masked_like_the_secret_key(tmp_path) -> None:  # noqa: ANN001
    from_env = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path), "ABVOC_METRICS_TOKEN": TOKEN})
    assert from_env.metrics_token == Secret(TOKEN)
    assert from_env.describe()["metrics_token"] == "****" and TOKEN not in repr(from_env)
    config = tmp_path / "abvoc.toml"
    config.write_text(f'metrics_token = "{TOKEN}"\n')
    from_file = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)}, config_file=config)
    assert from_file.metrics_token == Secret(TOKEN)
    assert load_settings(env={"ABVOC_DATA_DIR": str(tmp_path)}).metrics_token is None


def test_the_content_type_names_each_parameter_once(make_app) -> None:  # noqa: ANN001
    """Given as a mimetype, Flask added its own charset to prometheus_client's ('...;
    charset=utf-8; charset=utf-8'): a media type naming a parameter twice is invalid, and Go's
    mime.ParseMediaType, which Prometheus reads the header with, refuses it."""
    from prometheus_client import CONTENT_TYPE_LATEST

    answer = make_app().test_client().get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    names = [p.split("=")[0].strip() for p in answer.headers["Content-Type"].split(";")[1:]]
    assert len(names) == len(set(names)), answer.headers["Content-Type"]
