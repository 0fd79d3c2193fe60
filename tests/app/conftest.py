"""An app with registered, trained candidates and API keys for each scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from app.cli import main
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


@pytest.fixture
def fresh_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The command line on a new SQLite store in a fresh data folder, no other setting."""
    for var in ("ABVOC_DATABASE_URL", "ABVOC_CONFIG", "ABVOC_MODEL_STORE", "ABVOC_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    return runner
