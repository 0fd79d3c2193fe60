"""Fixtures the bundle tests share: the example bundle, a SQLite registry, a model store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store.db import Database
from serving.bundles import register_bundle
from serving.experiments import Experiments
from serving.registry import Registry
from tests.support.bundles import copy_example, sqlite_registry


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from sqlite_registry(tmp_path)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def iris(registry: Registry, models: Path, tmp_path: Path) -> str:
    register_bundle(registry, models, copy_example(tmp_path))
    """The example ONNX iris classifier, registered."""
    return "iris-onnx"


@pytest.fixture
def experiments(db: Database) -> Experiments:
    """Experiments over a store where candidates 'a' and 'b' (version 1) are registered."""
    registry = Registry(db)
    registry.register("a", "1")
    registry.register("b", "1")
    return Experiments(db)
