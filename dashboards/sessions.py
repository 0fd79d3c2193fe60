"""Server-side ends of dashboard sessions, kept on the API key's row.

A session is a signed cookie (nothing of it is stored), so clearing it in the browser does not
end a copy of it. A logout therefore records its time on the key (``api_keys.sessions_ended_at``)
and the guard refuses every session of that key that started before it: logging out ends every
dashboard session of that key, in every browser. The time is read through a cache of
:data:`CACHE_S` seconds like the key's revocation (the worker that served the logout forgets its
cached value at once; other workers within ``CACHE_S``).
"""

from __future__ import annotations

import time
from datetime import datetime

from core.store.db import Database, utcnow
from core.store.models import ApiKey
from core.times import as_utc

CACHE_S = 5.0


def _epoch(at: datetime | None) -> float | None:
    """Seconds since the epoch (SQLite hands back naive datetimes: they are UTC)."""
    if at is None:
        return None
    return as_utc(at).timestamp()


class SessionEnds:
    """When each key's dashboard sessions were last ended, cached ``ttl_s`` seconds so a
    dashboard request costs no query."""

    def __init__(self, db: Database, ttl_s: float = CACHE_S) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, float | None]] = {}

    def ended_at(self, key_id: int) -> float | None:
        """The last logout of key ``key_id`` (epoch seconds), None if it never logged out."""
        hit = self._cache.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        with self.db.reading() as s:
            row = s.get(ApiKey, key_id)
            ended = None if row is None else _epoch(row.sessions_ended_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (time.monotonic(), ended)
        return ended

    def end(self, key_id: int) -> None:
        """End every session of key ``key_id`` started until now."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is not None:
                row.sessions_ended_at = now
        self._cache[key_id] = (time.monotonic(), now.timestamp())

    def live(self, key_id: int, started: object, lifetime_s: float) -> bool:
        """True when a session of ``key_id`` started at ``started`` (epoch seconds, from the
        signed cookie) is within its absolute lifetime and began after the key's last logout."""
        if not isinstance(started, int | float) or isinstance(started, bool):
            return False
        now = time.time()
        if not now - lifetime_s < started <= now + 60:
            return False
        ended = self.ended_at(key_id)
        return ended is None or started > ended
