"""Shared helpers for the bundle tests: the example bundle, a registry, and a refusal check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import AbvocError
from core.store import Database, schema
from serving.bundles import Limits, ManifestError, register_bundle
from serving.registry import Registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "iris-onnx"
FLOWERS = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]], np.float32)


def copy_example(tmp_path: Path) -> Path:
    """A fresh copy of the example bundle, free to be broken."""
    return Path(shutil.copytree(EXAMPLE, tmp_path / "iris-onnx"))


def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    """A migrated SQLite registry: refusals and storage do not depend on the database; the CLI
    test covers the store on SQLite and PostgreSQL."""
    db = Database(f"sqlite:///{tmp_path / 'bundles.db'}")
    schema.upgrade(db)
    yield Registry(db)
    db.dispose()


def edit(bundle: Path, old: str, new: str) -> None:
    path = bundle / "candidate.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def refused(registry: Registry, models: Path, source: Path, fragment: str,
            limits: Limits | None = None, kind: type[AbvocError] = ManifestError) -> AbvocError:
    """Registering `source` fails with `kind` matching `fragment`, and nothing is stored."""
    with pytest.raises(kind, match=fragment) as info:
        register_bundle(registry, models, source, limits)
    assert info.value.status == kind.status
    assert registry.list(include_retired=True) == []
    assert not any((models / "bundles").iterdir()), "a refused bundle left files behind"
    return info.value
