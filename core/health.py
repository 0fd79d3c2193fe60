"""Component health kept in the store, so /readyz of any process can see parts running in others.

Each supervised loop (the outbox relay, an evaluation worker) writes one `component_heartbeats`
row per instance: when it last beat, whether its last round failed and why, how often it has
restarted, and how far behind it is. The readiness rule (:func:`component_checks`):

- a component with no rows at all is not judged: this deployment may not run it here or at all
  (an API-only process stays meaningful) — unless the deployment says it runs it
  (``expected``, from ``ABVOC_EXPECT_PARTS``; `abvoc up` sets it for the parts it supervises):
  then it is *down* until an instance of it beats, so a part that never got going, or whose
  heartbeats cannot be written, is not taken for one this deployment does not run;
- a component is *down* when it has rows but none beat within `stale_s` (its process died, or
  it is stuck) — until an instance of it beats again;
- it is *failing* when a live instance's last round failed (it is restarting with backoff); a
  round on standby while another instance does the work (core.supervision) leaves that as it is;
- it is *lagging* when a live instance reports a lag above `max_lag_s`.

Independently of heartbeats, the outbox is *lagging* when its oldest unsent event is older than
`max_lag_s` (no relay running, or the bus down for that long).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from core.store.db import Database, utcnow
from core.store.models import ComponentHeartbeat, OutboxEvent
from core.store.upsert import upsert

log = logging.getLogger(__name__)

HEARTBEAT_STALE_S = 15.0
"""A component instance whose last beat is older than this is taken for dead."""
MAX_LAG_S = 120.0
"""Readiness fails when events wait longer than this to be relayed or applied."""
WARN_EVERY = 60
"""Failed heartbeat writes in a row between two warnings (one a minute at one beat a second)."""


def instance_name() -> str:
    """Host, process and a short random part: unique per running loop."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def safe_text(text: str, limit: int = 1000) -> str:
    """Text any store accepts: lone surrogates escaped, NUL removed, bounded."""
    cleaned = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")
    return cleaned[:limit]


@dataclass
class Heartbeat:
    """Writes one instance's heartbeat row; every write is best effort (the store may be the
    very thing that is down, and a heartbeat must never be the reason a loop stops)."""

    db: Database
    component: str
    instance: str = field(default_factory=instance_name)
    started_at: datetime = field(default_factory=utcnow)
    failed_writes: int = field(default=0, init=False)  # in a row (see `beat`)

    def beat(self, *, failing: bool = False, restarts: int = 0, lag_s: float | None = None,
             error: str | None = None) -> bool:
        now = utcnow()
        row: dict[str, Any] = {
            "component": self.component, "instance": self.instance,
            "started_at": self.started_at, "beat_at": now, "failing": failing,
            "restarts": restarts, "lag_s": lag_s,
        }
        update = {k: row[k] for k in ("beat_at", "failing", "restarts", "lag_s")}
        if error is not None:
            row["last_error"] = update["last_error"] = safe_text(error)
            row["last_error_at"] = update["last_error_at"] = now
        try:
            with self.db.session() as s:
                upsert(s, ComponentHeartbeat.__table__, row,
                       keys=["component", "instance"], update=update)
        except Exception as exc:  # noqa: BLE001 - best effort, see the class docstring
            self.failed_writes += 1
            # Not quietly: /readyz reads these rows, so a part whose beats cannot be written
            # looks down (or, where nothing expects it, absent) while it works.
            level = logging.WARNING if self.failed_writes % WARN_EVERY == 1 else logging.DEBUG
            log.log(level, "heartbeat of %s (%s) not written (%d in a row): %s",
                    self.component, self.instance, self.failed_writes,
                    safe_text(f"{type(exc).__name__}: {exc}", 500))
            return False
        if self.failed_writes:
            log.warning("heartbeat of %s (%s) written again after %d failed writes",
                        self.component, self.instance, self.failed_writes)
            self.failed_writes = 0
        return True

    def clear_stale(self, stale_s: float = HEARTBEAT_STALE_S) -> None:
        """Forget dead instances of this component (called when a new one starts)."""
        cutoff = utcnow() - timedelta(seconds=stale_s)
        self._delete(ComponentHeartbeat.beat_at < cutoff)

    def forget(self) -> None:
        """Remove this instance's row on a clean stop: stopped on purpose is not down."""
        self._delete(ComponentHeartbeat.instance == self.instance)

    def _delete(self, condition: Any) -> None:
        try:
            with self.db.session() as s:
                s.execute(delete(ComponentHeartbeat).where(
                    ComponentHeartbeat.component == self.component, condition))
        except Exception as exc:  # noqa: BLE001 - best effort
            log.debug("heartbeat rows of %s not deleted: %s", self.component, exc)


def _aware(value: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; they are stored in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def component_checks(db: Database, *, stale_s: float = HEARTBEAT_STALE_S,
                     max_lag_s: float = MAX_LAG_S,
                     expected: Sequence[str] = ()) -> dict[str, str]:
    """'ok' or what is wrong, per component that has heartbeat rows or is `expected` (see the
    module rule)."""
    now = utcnow()
    with db.reading() as s:
        rows = s.execute(select(ComponentHeartbeat)).scalars().all()
    by_component: dict[str, list[ComponentHeartbeat]] = {}
    for row in rows:
        by_component.setdefault(row.component, []).append(row)
    checks = {name: "down: no instance has written a heartbeat yet (this deployment runs it: "
                    "ABVOC_EXPECT_PARTS)" for name in expected if name not in by_component}
    for component, beats in sorted(by_component.items()):
        ages = {id(b): (now - _aware(b.beat_at)).total_seconds() for b in beats}
        live = [b for b in beats if ages[id(b)] <= stale_s]
        if not live:
            last = min(beats, key=lambda b: ages[id(b)])
            why = f"down: no heartbeat for {ages[id(last)]:.0f}s (limit {stale_s:.0f}s)"
            checks[component] = why + (f"; last error: {last.last_error}"
                                       if last.last_error else "")
            continue
        failing = [b for b in live if b.failing]
        lags = [b.lag_s for b in live if b.lag_s is not None]
        if failing:
            checks[component] = (f"failing: {len(failing)} of {len(live)} instances restarting; "
                                 f"last error: {failing[0].last_error}")
        elif lags and max(lags) > max_lag_s:
            checks[component] = f"lagging: {max(lags):.0f}s behind (limit {max_lag_s:.0f}s)"
        else:
            checks[component] = "ok"
    return checks


def outbox_lag_s(db: Database) -> float:
    """Age in seconds of the oldest event waiting in the outbox (0 when none waits)."""
    with db.reading() as s:
        oldest = s.scalar(select(func.min(OutboxEvent.created_at))
                          .where(OutboxEvent.sent_at.is_(None)))
    return max(0.0, (utcnow() - _aware(oldest)).total_seconds()) if oldest else 0.0
