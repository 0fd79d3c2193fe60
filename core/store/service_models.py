"""The service's own tables: its API keys, and the heartbeats and clean stops of its supervised
loops.

Kept apart from :mod:`core.store.models` (which imports them, so one metadata holds every table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base, BigId


class ComponentHeartbeat(Base):
    """A supervised loop (relay, worker) says it is alive, how far behind it is, how it last
    failed and what it reads; /readyz reads these rows, whichever process wrote them. A clean
    stop deletes the instance's row: every abvoc, older ones too, reads a row whose beat went
    stale as a dead part (a stop is kept in :class:`ComponentStop`)."""

    __tablename__ = "component_heartbeats"

    component: Mapped[str] = mapped_column(String(50), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    failing: Mapped[bool] = mapped_column(Boolean, default=False)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    lag_s: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    # What a consumer reads (0026): /readyz flags one reading another prefix than the API's.
    topic_prefix: Mapped[str | None] = mapped_column(String(200))
    consumer_group: Mapped[str | None] = mapped_column(String(200))
    # Said while the loop runs well, e.g. a worker parking most receipts (0026).
    note: Mapped[str | None] = mapped_column(Text)


class ComponentStop(Base):
    """An instance of a supervised loop stopped cleanly (0026), so /readyz can tell a part the
    deployment runs that stopped from one that never started. Its own table, not a mark on
    the heartbeat row: older abvoc nodes read only heartbeats, and would take a kept row for a
    dead part. A new instance of the component clears its component's rows."""

    __tablename__ = "component_stops"

    component: Mapped[str] = mapped_column(String(50), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    stopped_at: Mapped[datetime]


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` lets people recognise it in lists."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # The last dashboard logout: sessions this key started before it are over.
    sessions_ended_at: Mapped[datetime | None]


class SpoolProgress(Base):
    """How far a request spool's segment is committed (core.store.spool): written in the same
    transaction as the segment's rows, so a process that commits what a dead one left starts
    exactly where it stopped."""

    __tablename__ = "spool_progress"

    segment: Mapped[str] = mapped_column(String(200), primary_key=True)
    applied: Mapped[int] = mapped_column(BigInteger)
