"""Component health kept in the store, so /readyz of any process can see parts running in others.

Each supervised loop (the outbox relay, an evaluation worker) writes one `component_heartbeats`
row per instance: when it last beat, whether its last round failed and why, how often it has
restarted, how far behind it is, which topics it reads (a worker: its topic prefix and consumer
group), and a note on work it does but cannot count (a worker parking most receipts). A clean
stop deletes the instance's row, as abvoc always did (older nodes on the same store read a row
whose beat went stale as a dead part), and records the stop in `component_stops`, which only
this rule reads. The readiness rule (:func:`component_checks`):

- a component with no rows at all is not judged: this deployment may not run it here or at all
  (an API-only process stays meaningful) — unless the deployment says it runs it
  (``expected``, from ``ABVOC_EXPECT_PARTS``; `abvoc up` sets it for the parts it supervises):
  then it is *down* until an instance of it beats, so a part that never got going, or whose
  heartbeats cannot be written, is not taken for one this deployment does not run;
- a component whose instances all stopped cleanly has no rows either, so it is not judged
  (stopped on purpose is not down) unless it is expected: then it is *down* as *stopped* while
  its stops are recorded (a new instance clears them), which tells an operator it ran, not
  that it never started;
- a component is *not beating* when it has rows but none beat within `stale_s`: its
  process died, or it is stuck (e.g. waiting on a store lock): the store cannot tell which;
- it is *failing* when a live instance's last round failed (it is restarting with backoff); a
  round on standby while another instance does the work (core.supervision) leaves that as it is;
- it reads the *wrong topics* when every live instance that names its topic prefix names
  another one than the API's (``prefix``): it consumes topics nothing writes to;
- it is *parking* when a live instance notes that it parks most of what it reads (a worker
  whose secret key refuses the API's receipts);
- it is *lagging* when a live instance reports a lag above `max_lag_s`.
An error is shown only from a row whose last round failed, with its age: a row that beat well
since keeps its error, but that error is history, not the cause of what is wrong now.

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
from core.store.service_models import ComponentStop
from core.store.upsert import upsert
from core.times import as_utc

log = logging.getLogger(__name__)

HEARTBEAT_STALE_S = 15.0
"""A component instance whose last beat is older than this is taken for dead or stuck."""
MAX_LAG_S = 120.0
"""Readiness fails when events wait longer than this to be relayed or applied."""
WARN_EVERY = 60
"""Failed heartbeat writes in a row between two warnings (one a minute at one beat a second)."""
NOT_BEATING = ("not beating: no heartbeat for {age:.0f}s (limit {limit:.0f}s): its process "
               "may have died or be stuck, e.g. waiting on a lock")
"""A part whose rows went stale: whether its process lives the store cannot say."""
EXPECTED = "this deployment runs it: ABVOC_EXPECT_PARTS"


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
    very thing that is down, and a heartbeat must never be the reason a loop stops).

    `topic_prefix` and `consumer_group` say what a consumer reads, so /readyz can tell one
    reading another prefix's topics; `note` is what its loop wants said while it runs well
    (see core.parking.ReceiptAlarm); each beat writes them as they stand."""

    db: Database
    component: str
    instance: str = field(default_factory=instance_name)
    started_at: datetime = field(default_factory=utcnow)
    topic_prefix: str | None = None
    consumer_group: str | None = None
    note: str | None = None
    failed_writes: int = field(default=0, init=False)  # in a row (see `beat`)

    def beat(self, *, failing: bool = False, restarts: int = 0, lag_s: float | None = None,
             error: str | None = None) -> bool:
        now = utcnow()
        note = safe_text(self.note) if self.note else None
        row: dict[str, Any] = {
            "component": self.component, "instance": self.instance,
            "started_at": self.started_at, "beat_at": now, "failing": failing,
            "restarts": restarts, "lag_s": lag_s, "topic_prefix": self.topic_prefix,
            "consumer_group": self.consumer_group, "note": note,
        }
        update_ = {k: row[k] for k in ("beat_at", "failing", "restarts", "lag_s",
                                       "topic_prefix", "consumer_group", "note")}
        if error is not None:
            row["last_error"] = update_["last_error"] = safe_text(error)
            row["last_error_at"] = update_["last_error_at"] = now
        try:
            with self.db.session() as s:
                upsert(s, ComponentHeartbeat.__table__, row,
                       keys=["component", "instance"], update=update_)
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
        """Forget dead instances and the recorded stops of this component (called when an
        instance starts, and now and then while it runs: its own beats say whether the
        component runs)."""
        cutoff = utcnow() - timedelta(seconds=stale_s)
        self._write(delete(ComponentHeartbeat).where(
            ComponentHeartbeat.component == self.component, ComponentHeartbeat.beat_at < cutoff))
        self._write(delete(ComponentStop).where(ComponentStop.component == self.component))

    def forget(self) -> None:
        """On a clean stop, record the stop, then delete this instance's heartbeat row:
        stopped on purpose is not down (to older nodes too, which read only heartbeats), yet
        a part the deployment runs reads as stopped, not as one that never started. Two
        writes, in this order: a reader between them sees the row still beating, and a stop
        that cannot be recorded still deletes the row."""
        self._write_stop()
        self._write(delete(ComponentHeartbeat).where(
            ComponentHeartbeat.component == self.component,
            ComponentHeartbeat.instance == self.instance))

    def _write_stop(self) -> None:
        row = {"component": self.component, "instance": self.instance, "stopped_at": utcnow()}
        try:
            with self.db.session() as s:
                upsert(s, ComponentStop.__table__, row, keys=["component", "instance"])
        except Exception as exc:  # noqa: BLE001 - best effort
            log.debug("stop of %s (%s) not recorded: %s", self.component, self.instance, exc)

    def _write(self, statement: Any) -> None:
        try:
            with self.db.session() as s:
                s.execute(statement)
        except Exception as exc:  # noqa: BLE001 - best effort
            log.debug("heartbeat rows of %s not written: %s", self.component, exc)


def _age(now: datetime, value: datetime) -> float:
    return (now - as_utc(value)).total_seconds()


def _last_error(row: ComponentHeartbeat, now: datetime) -> str:
    """'; last error Ns ago: …' of a row whose last round failed, else nothing (see the
    module docstring)."""
    if not row.failing or not row.last_error:
        return ""
    when = f" {_age(now, row.last_error_at):.0f}s ago" if row.last_error_at else ""
    return f"; last error{when}: {row.last_error}"


def _stopped(db: Database, components: list[str], now: datetime) -> dict[str, str]:
    """The verdict of each of `components` (expected, without heartbeat rows): *stopped* when
    an instance of it stopped cleanly since the last one started, else *never started*."""
    with db.reading() as s:
        last = dict(s.execute(select(ComponentStop.component, func.max(ComponentStop.stopped_at))
                              .where(ComponentStop.component.in_(components))
                              .group_by(ComponentStop.component)).all())
    return {name: (f"down: stopped: no instance runs (the last stopped cleanly "
                   f"{_age(now, last[name]):.0f}s ago; {EXPECTED})") if last.get(name) else
            f"down: no instance has written a heartbeat yet ({EXPECTED})" for name in components}


def _live_verdict(live: list[ComponentHeartbeat], now: datetime, max_lag_s: float,
                  prefix: str | None) -> str:
    """What is wrong with a component that has live instances, or 'ok'."""
    failing = [b for b in live if b.failing]
    if failing:
        return (f"failing: {len(failing)} of {len(live)} instances restarting"
                + _last_error(failing[0], now))
    named = {b.topic_prefix for b in live}
    if prefix is not None and None not in named and prefix not in named:
        theirs = ", ".join(repr(p) for p in sorted(named, key=str))
        return (f"wrong topics: its live instances read topics prefixed {theirs}, while this "
                f"API writes to {prefix!r}: nothing reads its events (set the same "
                "ABVOC_TOPIC_PREFIX on both)")
    noted = [b for b in live if b.note]
    if noted:
        return f"parking: {len(noted)} of {len(live)} instances: {noted[0].note}"
    lags = [b.lag_s for b in live if b.lag_s is not None]
    if lags and max(lags) > max_lag_s:
        return f"lagging: {max(lags):.0f}s behind (limit {max_lag_s:.0f}s)"
    return "ok"


def component_checks(db: Database, *, stale_s: float = HEARTBEAT_STALE_S,
                     max_lag_s: float = MAX_LAG_S, expected: Sequence[str] = (),
                     prefix: str | None = None) -> dict[str, str]:
    """'ok' or what is wrong, per component that has heartbeat rows or is `expected`;
    `prefix` is the caller's own topic prefix (see the module rule)."""
    now = utcnow()
    with db.reading() as s:
        rows = s.execute(select(ComponentHeartbeat)).scalars().all()
    by_component: dict[str, list[ComponentHeartbeat]] = {}
    for row in rows:
        by_component.setdefault(row.component, []).append(row)
    missing = [name for name in dict.fromkeys(expected) if name not in by_component]
    checks = _stopped(db, missing, now) if missing else {}
    for component, beats in sorted(by_component.items()):
        live = [b for b in beats if _age(now, b.beat_at) <= stale_s]
        if live:
            checks[component] = _live_verdict(live, now, max_lag_s, prefix)
            continue
        last = min(beats, key=lambda b: _age(now, b.beat_at))
        checks[component] = (NOT_BEATING.format(age=_age(now, last.beat_at), limit=stale_s)
                             + _last_error(last, now))
    return checks


def outbox_lag_s(db: Database) -> float:
    """Age in seconds of the oldest event waiting in the outbox (0 when none waits)."""
    with db.reading() as s:
        oldest = s.scalar(select(func.min(OutboxEvent.created_at))
                          .where(OutboxEvent.sent_at.is_(None)))
    return max(0.0, (utcnow() - as_utc(oldest)).total_seconds()) if oldest else 0.0
