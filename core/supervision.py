"""Supervision for the long-running loops (outbox relay, stream consumers).

A loop is a `step` that does one round and a `reset` that drops its connections. Any exception
from a step — the bus gone, PostgreSQL restarting, a bug — is logged, counted
(`abvoc_component_restarts_total`), recorded in the component's heartbeat row, and followed by a
reset and a retry after an exponential backoff with jitter. Only the stop event ends the loop, so
one bad moment can never stop the stream for good while the process looks alive.

A round that found another instance doing the work (a relay that did not get the lock) returns
:data:`STANDBY`: it is neither a success nor a failure, so it keeps this instance's failure state
and backoff as they are. Counted as a success it would clear them, and instances taking turns at
a failing job would each look healthy between their own failures, with the backoff never growing.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from enum import Enum

from prometheus_client import Counter

from core.health import Heartbeat, safe_text
from core.store.db import Database

log = logging.getLogger(__name__)

RESTARTS = Counter(
    "abvoc_component_restarts", "Supervised loop restarts after an error", ["component", "error"]
)
HEARTBEAT_FAILURES = Counter(
    "abvoc_heartbeat_write_failures",
    "Heartbeat rows a supervised loop could not write (/readyz then sees its part down)",
    ["component"])


def freeze_startup_heap() -> None:
    """Keep what the process allocated at start-up out of the cyclic collector's full passes.

    A long-running process builds its modules, models and connections once; its loops then make
    thousands of short-lived rows per batch, and every full collection they trigger would walk
    the whole start-up heap again (the evaluation worker holds about 335,000 tracked objects
    with torch and SQLAlchemy loaded: a ninth of its CPU in `bench_bus`). `gc.freeze` moves those
    objects to the permanent generation; anything allocated later is collected as before.
    Called by the process entry points, after start-up and before the loops (the API server: in
    each worker once the app is loaded).
    """
    gc.collect()
    gc.freeze()


class Round(Enum):
    """What a step returns for a round that did no work of its own (see the module docstring)."""

    STANDBY = "standby"


STANDBY = Round.STANDBY

Step = Callable[[], float | Round | None]
"""One round of a loop; returns the loop's current lag in seconds, if it knows it, or STANDBY."""

CLEAR_STALE_EVERY_S = 60.0
"""How often a running instance forgets its component's dead instances. At its start it can
forget only rows already stale then: an instance killed (`kill -9`) and restarted a second later
left its row behind for good, and once the new one stopped cleanly /readyz read the part as
dead ('not beating') instead of stopped."""


class Supervisor:
    """Runs a step function until stopped, restarting it with backoff on any error."""

    def __init__(self, component: str, db: Database | None = None, *,
                 min_backoff_s: float = 0.2, max_backoff_s: float = 5.0,
                 beat_interval_s: float = 1.0,
                 clear_stale_every_s: float = CLEAR_STALE_EVERY_S) -> None:
        self.component = component
        self.heartbeat = Heartbeat(db, component) if db is not None else None
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.beat_interval_s = beat_interval_s
        self.clear_stale_every_s = clear_stale_every_s
        self._cleared = 0.0
        self.restarts = 0
        self._last_beat = 0.0
        self._failing = False

    def run(self, stop: threading.Event, step: Step, reset: Callable[[], None]) -> None:
        if self.heartbeat is not None:
            self._clear_stale()
            self._beat(None, force=True)
        backoff = self.min_backoff_s
        try:
            while not stop.is_set():
                try:
                    lag_s = step()
                except Exception as exc:  # noqa: BLE001 - supervision: any error restarts
                    self._failed(exc, backoff)
                    self._quietly(reset)
                    stop.wait(backoff * random.uniform(0.75, 1.25))
                    backoff = min(self.max_backoff_s, backoff * 2)
                    continue
                if lag_s is STANDBY:
                    self._beat(None)  # alive; failing or not as its own last round left it
                    continue
                backoff = self.min_backoff_s
                recovered, self._failing = self._failing, False
                self._beat(lag_s, force=recovered)
        finally:
            self._quietly(reset)
            if self.heartbeat is not None:
                self.heartbeat.forget()

    @property
    def failing(self) -> bool:
        """Whether this instance's last round of its own failed."""
        return self._failing

    def _failed(self, exc: Exception, backoff: float) -> None:
        self.restarts += 1
        self._failing = True
        RESTARTS.labels(self.component, type(exc).__name__).inc()
        error = safe_text(f"{type(exc).__name__}: {exc}", 500)
        log.warning("%s failed (restart %d, next try in %.1fs): %s", self.component,
                    self.restarts, backoff, error, exc_info=log.isEnabledFor(logging.DEBUG))
        if self.heartbeat is not None:
            self._written(self.heartbeat.beat(failing=True, restarts=self.restarts, error=error))
            self._last_beat = time.monotonic()

    def _beat(self, lag_s: float | None, *, force: bool = False) -> None:
        if self.heartbeat is None:
            return
        if force or time.monotonic() - self._last_beat >= self.beat_interval_s:
            self._written(self.heartbeat.beat(failing=self._failing, restarts=self.restarts,
                                              lag_s=lag_s))
            self._last_beat = time.monotonic()
            if self._last_beat - self._cleared >= self.clear_stale_every_s:
                self._clear_stale()

    def _clear_stale(self) -> None:
        """Forget the component's dead instances (CLEAR_STALE_EVERY_S: at the start, and again
        while this one runs): its own beats say whether the component runs."""
        if self.heartbeat is not None:
            self.heartbeat.clear_stale()
        self._cleared = time.monotonic()

    def _written(self, ok: bool) -> None:
        if not ok:  # logged by the heartbeat; counted here, for alerts
            HEARTBEAT_FAILURES.labels(self.component).inc()

    def _quietly(self, reset: Callable[[], None]) -> None:
        try:
            reset()
        except Exception as exc:  # noqa: BLE001 - a half-broken client may fail to close
            log.debug("%s: reset failed: %s", self.component, exc)
