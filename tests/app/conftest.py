"""An app with registered, trained candidates and API keys for each scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from core.settings import Settings
from serving.registry import Registry
from tests.support.keys import bearer
from workloads.ocr.bundle import register_trained

CANDIDATES = ("ocr-small-printed", "ocr-small-mixed", "ocr-large-mixed")


@pytest.fixture
def app(settings: Settings, trained_models: Path) -> Iterator[Flask]:
    settings = settings.with_overrides(model_store=trained_models)
    flask_app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    registry = flask_app.extensions["abvoc_serving"].registry
    register(registry, trained_models)
    yield flask_app
    close_app(flask_app)


def register(registry: Registry, models: Path) -> None:
    for name in CANDIDATES:
        register_trained(registry, models, models / name)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def v2app(settings: Settings) -> Iterator[Flask]:
    """The app with no candidate registered: each test registers the bundles it needs."""
    flask_app = create_app(settings, test_config={"TESTING": True, "ROUTER_REFRESH_S": 0.0})
    yield flask_app
    close_app(flask_app)


_key = bearer


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return _key(app, "admin")


@pytest.fixture
def predictor(app: Flask) -> dict[str, str]:
    return _key(app, "predict")


@pytest.fixture
def corrector(app: Flask) -> dict[str, str]:
    return _key(app, "correct")
