"""The fault campaign's faults, one at a time, each checked to have done what it claims.

A fault fires at its share of the events, but never before the service has recovered from the
previous one: the faulted part is back (the broker answers, PostgreSQL answers, every worker
process runs) and events flow again (the outbox and the stream caught up, and events were
applied since the part came back). Faults that overlapped (a worker killed while the broker was
still down consumed nothing, so nothing was in its hands) tested less than the campaign said.

Each fault then says what it did, and whether that is what it claims:
- broker: the API accepted events while it was down, and the outbox held them;
- worker: the killed worker had events in hand (applied, offsets not committed): the events
  handed to workers again grew (absorbed by event id); when it held none, it says so;
- postgres: the server's start time moved (it really restarted).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.campaign_audit import pending

SHARES = {"broker": 0.15, "worker": 0.45, "postgres": 0.70}
BACKLOG = 300
"""Outbox rows unsent and events unapplied at most, for the stream to count as caught up."""
RECOVERY_TIMEOUT_S = 180.0
REDELIVERY_WAIT_S = 30.0
"""How long a killed worker's events may take to reach another member (its session is 10 s)."""


@dataclass
class FaultReport:
    name: str
    at_events: int
    checked: bool
    facts: str
    recovered_s: float | None = None

    def line(self) -> str:
        back = ("not recovered" if self.recovered_s is None
                else f"events flowing again {self.recovered_s:.1f}s after it was back")
        verdict = "as claimed" if self.checked else "NOT as claimed"
        return f"{self.name} at {self.at_events} events ({verdict}): {self.facts}; {back}"


class Faults:
    """Fires the campaign's faults in order (see the module's docstring). `campaign` is a
    benchmarks.bench_campaign.Campaign: its db, pg, broker, workers, progress, stop."""

    def __init__(self, campaign: Any, say: Callable[[str], None]) -> None:
        self.c = campaign
        self.say = say
        self.reports: list[FaultReport] = []
        self.not_fired: list[str] = []

    def run(self) -> None:
        plan = [name for name in SHARES if name in self.c.args.faults]
        for i, name in enumerate(plan):
            while self.c.progress() < SHARES[name] * self.c.args.events:
                if self.c.stop.wait(0.5):
                    break
            if self.c.stop.is_set():  # the load is over: a fault now would not be one under load
                self.not_fired = plan[i:]
                return
            at = self.c.progress()
            self.say(f"fault at {at} events: {name}")
            checked, facts = getattr(self, f"_{name}")()
            report = FaultReport(name, at, checked, facts)
            self.reports.append(report)
            report.recovered_s = self._recovered()
            self.say(f"fault {report.line()}")
            if report.recovered_s is None:
                self.not_fired = plan[i + 1:]
                return

    @property
    def fired(self) -> list[str]:
        return [r.name for r in self.reports]

    # -- the faults: each returns (did what it claims, what it did) -------------------------

    def _broker(self) -> tuple[bool, str]:
        self.c.broker.kill()
        self.say("Kafka broker killed (SIGKILL); the API keeps accepting into the outbox")
        before, peak = self.c.progress(), 0
        down_until = time.monotonic() + self.c.args.broker_down_s
        while time.monotonic() < down_until:
            peak = max(peak, self._pending()[0])
            time.sleep(0.5)
        accepted = self.c.progress() - before
        self.c.broker.start()
        self.say("Kafka broker restarted")
        return (accepted > 0 and peak > 0,
                f"down {self.c.args.broker_down_s:.0f}s, {accepted} events accepted meanwhile, "
                f"the outbox peaked at {peak} unsent")

    def _worker(self) -> tuple[bool, str]:
        before = self._redelivered()
        victim = self.c.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        self.say(f"worker pid {victim.pid} killed with kill -9")
        time.sleep(3.0)  # as a supervisor would, a moment later
        self.c.workers[0] = self.c.spawn_worker(0)
        self.say(f"worker started again as pid {self.c.workers[0].pid}")
        # Its partitions go to another member once the broker drops it (a 10 s session), and
        # are read again from their committed offsets.
        deadline = time.monotonic() + REDELIVERY_WAIT_S
        while (again := self._redelivered() - before) <= 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        if again > 0:
            return True, f"the killed worker had events in hand: {again} handed to workers again"
        return False, ("the killed worker held no unapplied batch when killed (0 handed to "
                       "workers again): this tested its restart only")

    def _postgres(self) -> tuple[bool, str]:
        before = self._started_at()
        self.c.pg.restart(down_s=self.c.args.postgres_down_s)
        self.say("PostgreSQL restarted")
        after = self._started_at()
        moved = before is not None and after is not None and after > before
        return moved, (f"down {self.c.args.postgres_down_s:.0f}s, server start time "
                       f"{'moved' if moved else 'did not move'} ({before} → {after})")

    # -- what the checks read ---------------------------------------------------------------

    def _recovered(self) -> float | None:
        """Seconds until events flow again: every worker runs, the outbox and the stream have
        caught up, and events were applied since (or everything is applied: the load ended)."""
        start = time.monotonic()
        applied = self._applied()
        while time.monotonic() - start < RECOVERY_TIMEOUT_S:
            unsent, unapplied = self._pending()
            workers = all(p.poll() is None for p in self.c.workers)
            now = self._applied()
            flowing = applied is not None and now is not None and now > applied
            if workers and 0 <= unsent < BACKLOG and 0 <= unapplied < BACKLOG and (
                    flowing or (unsent, unapplied) == (0, 0)):
                return time.monotonic() - start
            applied = applied if applied is not None else now
            time.sleep(0.5)
        return None

    def _pending(self) -> tuple[int, int]:
        try:
            return pending(self.c.db)
        except SQLAlchemyError:
            return -1, -1

    def _scalar(self, sql: str) -> Any:
        try:
            with self.c.db.engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        except SQLAlchemyError:
            return None

    def _applied(self) -> int | None:
        return self._scalar("SELECT count(*) FROM processed_events "
                            "WHERE group_id = 'evaluation'")

    def _redelivered(self) -> int:
        return self._scalar("SELECT count(*) - count(DISTINCT event_id) FROM campaign_claims "
                            "WHERE group_id = 'evaluation'") or 0

    def _started_at(self) -> Any:
        for _ in range(60):  # the pool's connections were cut: the first tries may fail
            value = self._scalar("SELECT pg_postmaster_start_time()")
            if value is not None:
                return value
            time.sleep(0.5)
        return None
