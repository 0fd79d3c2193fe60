"""The SQL store: models, engines and sessions (SQLite or PostgreSQL through SQLAlchemy)."""

from core.store.db import Database, utcnow
from core.store.models import Base

__all__ = ["Base", "Database", "utcnow"]
