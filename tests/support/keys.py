"""API keys for tests: the Authorization header of a new key with the given scopes."""

from __future__ import annotations

from flask import Flask

from app.auth import create_key
from core.store.db import Database


def bearer(where: Flask | Database, *scopes: str, name: str = "test") -> dict[str, str]:
    """Headers carrying a new key of `scopes`, made in the app's store (or the store given)."""
    db = where.extensions["abvoc"].db if isinstance(where, Flask) else where
    return {"Authorization": f"Bearer {create_key(db, list(scopes), name=name)['key']}"}
