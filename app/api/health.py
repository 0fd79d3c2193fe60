"""Liveness and readiness.

/healthz says the process runs. /readyz says the service can do its work: the store and the bus
answer, events do not wait in the outbox past a limit, and every part that keeps a heartbeat in
the store (the outbox relay, the evaluation workers, in whatever process they run) is alive, not
restarting, not lagging past the limit, reading this API's topic prefix and not parking most of
what it reads. The rule for parts is in :mod:`core.health`: a part with no heartbeat row, or
only rows of instances that stopped cleanly, is not judged (an API-only deployment stays
meaningful), one whose rows all went stale is not beating until an instance of it beats again;
a part the deployment says it runs (``ABVOC_EXPECT_PARTS``, set by `abvoc up`) is down until
its first beat, and down as stopped once every instance stopped.

Limits: ``READY_STALE_S`` (heartbeat age, default 15 s) and ``READY_MAX_LAG_S`` (outbox age and
consumer lag, default 120 s) in the app config.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from core import health
from core.bus import BusUnavailable
from core.errors import ConfigError
from core.outbox import pending_count
from core.quiet_log import warn_now_and_then
from core.store import schema

log = logging.getLogger(__name__)
# A monitor's probe answers within its own timeout (often 1-5 s) even while the broker is gone;
# 5 s, the start-up check's wait, made /readyz itself time out then.
PROBE_BUS_TIMEOUT_S = 1.5
PROBE_STORE_TIMEOUT_S = 1.5
bp = Blueprint("health", __name__)


class _StoreProbe(threading.Thread):
    def __init__(self, db: Any) -> None:
        super().__init__(name="store-probe", daemon=True)
        self.db, self.state, self.error = db, None, None

    def run(self) -> None:
        try:
            self.db.check()
            self.state = schema.status(self.db)
        except (ConfigError, SQLAlchemyError) as exc:
            self.error = exc


_probes: dict[int, _StoreProbe] = {}
_probes_lock = threading.Lock()


def store_state(db: Any) -> str:
    """The store's schema state (schema.CURRENT, AHEAD or BEHIND), or a ConfigError when it
    does not answer within PROBE_STORE_TIMEOUT_S. A store that hangs (a network partition, a
    stopped server) held /readyz for the whole outage and then said ready. The check runs on a
    thread of its own; while one is still stuck no other starts, so probes pile up nothing."""
    with _probes_lock:
        probe = _probes.get(id(db))
        if probe is None or probe.db is not db or not probe.is_alive():
            probe = _probes[id(db)] = _StoreProbe(db)
            probe.start()
    probe.join(PROBE_STORE_TIMEOUT_S)
    if probe.is_alive():
        raise ConfigError(f"the store did not answer within {PROBE_STORE_TIMEOUT_S:g} s")
    if probe.error is not None:
        raise probe.error
    return probe.state


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    services = current_app.extensions["abvoc"]
    stale_s = float(current_app.config.get("READY_STALE_S", health.HEARTBEAT_STALE_S))
    max_lag_s = float(current_app.config.get("READY_MAX_LAG_S", health.MAX_LAG_S))
    checks: dict[str, str] = {}
    body_note = None
    try:
        state = store_state(services.db)
        checks["database"] = "ok" if state != schema.BEHIND else \
            "schema not migrated: run `abvoc db upgrade`"
        if state == schema.AHEAD:  # ready (migrations since 0005 only add); said, to upgrade
            body_note = schema.ahead_note(services.db)
    except ConfigError as exc:
        checks["database"] = unreachable(exc.message)
    except SQLAlchemyError as exc:
        checks["database"] = unreachable(type(exc).__name__)
    try:
        services.bus.check(PROBE_BUS_TIMEOUT_S)
        checks["bus"] = "ok"
    except BusUnavailable as exc:
        checks["bus"] = unreachable(str(exc))
    body: dict = {"schema": body_note} if body_note else {}
    if checks["database"] == "ok":
        try:
            lag = health.outbox_lag_s(services.db)
            checks["outbox"] = ("ok" if lag <= max_lag_s else
                                f"lagging: oldest unsent event is {lag:.0f}s old "
                                f"(limit {max_lag_s:.0f}s)")
            body["outbox_pending"] = pending_count(services.db)
            body["outbox_lag_s"] = round(lag, 3)
        except SQLAlchemyError as exc:
            checks["outbox"] = f"unreadable: {type(exc).__name__}"
        try:
            checks.update(health.component_checks(
                services.db, stale_s=stale_s, max_lag_s=max_lag_s,
                expected=services.settings.expect_parts,
                prefix=services.settings.topic_prefix))
        except SQLAlchemyError as exc:
            checks["components"] = f"unreadable: {type(exc).__name__}"
        except (ValueError, TypeError) as exc:  # a stored value its column's type refuses
            checks["components"] = (f"unreadable: a heartbeat row does not parse "
                                    f"({type(exc).__name__}: {str(exc)[:120]})")
    serving = current_app.extensions.get("abvoc_serving")
    held = serving.predict.unrecorded() if serving is not None else None
    if held is not None:  # this process's answers still in its request spool
        count, waited = held
        checks["spool"] = "ok" if waited <= max_lag_s else (
            f"lagging: {count} answers are not in the store yet, the oldest for {waited:.0f}s "
            f"(limit {max_lag_s:.0f}s)")
        body["spool_pending"] = count
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks, **body}
    return jsonify(body), 200 if ready else 503


def unreachable(why: str) -> str:
    """What an open probe says of a store or bus it cannot reach: that, without the user, host
    and port its error names (anyone may call the probe); the log has the whole error."""
    warn_now_and_then(log, why)
    return "unreachable (the service's log says why)"
