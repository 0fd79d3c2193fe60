"""The event log's tables: the embedded bus (records, members, groups, committed offsets) and the
stream's bookkeeping (processed event ids, parked events).

Kept apart from :mod:`core.store.models` (which imports them, so one metadata holds every table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base, BigId


class BusRecord(Base):
    """The embedded bus: an append-only log per topic and partition, durable in the SQL store."""

    __tablename__ = "bus_log"
    __table_args__ = (Index(None, "topic", "partition", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    key: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class BusMember(Base):
    """A live consumer of the embedded bus; partitions are shared among a group's members."""

    __tablename__ = "bus_members"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    heartbeat_at: Mapped[datetime]


class BusGroup(Base):
    """A consumer group of the embedded bus: its generation moves on whenever its membership
    changes, and a commit from a member of an older generation is refused (fencing)."""

    __tablename__ = "bus_groups"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    members: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime]


class ConsumerOffset(Base):
    """The next offset a consumer group reads, per topic and partition (embedded bus)."""

    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Event ids a consumer group has applied: the guard that makes apply idempotent."""

    __tablename__ = "processed_events"
    __table_args__ = (Index(None, "processed_at"),)

    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime]


class ParkedEvent(Base):
    """An event that could not be applied (bad schema, bad JSON, no valid receipt, a value the
    store refuses): kept with the reason. `payload` holds at most the first 64 KiB of it;
    `payload_size` is the size it had on the bus."""

    __tablename__ = "parked_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # The event's id where its payload names one: while it is parked, retention keeps that id
    # in processed_events, so replaying a copy that was applied meanwhile cannot count twice.
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (UniqueConstraint("group_id", "topic", "partition", "offset"),
                      Index(None, "group_id", "event_id"))
