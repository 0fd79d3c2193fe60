"""Long-running processes: the API server, the outbox relay and the evaluation worker.

`abvoc serve` runs the API under granian (several worker processes, each with its own app and
store connections, forked before anything connects); `--dev` keeps Werkzeug's server for local
debugging. `abvoc worker` and `abvoc relay` run their loop until SIGINT/SIGTERM, so shutdown is
clean and the consumer commits nothing it has not applied; if a loop dies the process exits
non-zero, so whoever supervises it (`abvoc up`, systemd, Kubernetes) restarts it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

import app as app_package
from app import create_app, create_dashboard_app
from app.http_server import serve_wsgi
from app.supervisor import (
    PROMETHEUS_DIR_VAR,
    Child,
    Supervisor,
    check_port_free,
    child_env,
    forget_process_metrics,
    use_prometheus_dir,
)
from core.outbox import OutboxRelay
from core.settings import Settings
from core.startup import Services, connect
from core.store.db import Database
from core.store.retention import prune, prune_inputs
from core.supervision import freeze_startup_heap
from evaluation.worker import run_worker

log = logging.getLogger("abvoc")



_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> threading.Event:
    """An event set on SIGINT or SIGTERM (call from the main thread).

    The Python handlers do nothing themselves: Python runs a handler between two bytecodes of
    the main thread, so a second signal arriving while the first handler was inside
    `stop.set()` (which holds the event's lock) ran a second handler that waited for that lock
    forever; a relay hung so when `abvoc up` and a kill of the process group each sent it
    SIGTERM. The signal numbers go through a pipe (`signal.set_wakeup_fd`) to a thread that
    sets the event."""
    stop = threading.Event()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def watch() -> None:
        while not stop.is_set():
            for signum in os.read(read_fd, 64):
                if signum in _STOP_SIGNALS:
                    log.info("received signal %d, stopping", signum)
                    stop.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _wake_only)
    return stop


def _wake_only(_signum: int, _frame: object) -> None:
    """The Python handler of the stop signals: the wakeup pipe carries them (see above)."""


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except Exception:  # logged here; run_processes sees the thread gone and exits non-zero
            log.exception("%s failed", name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def run_relay(services: Services, stop: threading.Event) -> None:
    OutboxRelay(services.db, services.bus).run(stop)


def run_processes(
    services: Services,
    stop: threading.Event,
    *,
    api: tuple[str, int] | None = None,
    relay: bool = False,
    worker: bool = False,
) -> int:
    """Run the chosen parts in this process until `stop` is set; 1 when a part died first."""
    threads = []
    app = create_app(services=services) if api else None
    freeze_startup_heap()
    server = None
    if relay:
        threads.append(_thread("relay", lambda: run_relay(services, stop)))
    if worker:
        prefix = services.settings.topic_prefix
        threads.append(
            _thread("worker", lambda: run_worker(services.db, services.bus, prefix, stop,
                                                 secret=services.settings.secret_key))
        )
    if api:
        server = make_server(api[0], api[1], app, threaded=True)
        log.info("abvoc API listening on http://%s:%d (development server)", api[0],
                 server.server_port)
        threads.append(_thread("api", server.serve_forever))
    status = 0
    while not stop.wait(0.5):
        dead = [t.name for t in threads if not t.is_alive()]
        if dead:
            log.error("%s stopped unexpectedly; exiting so that it is restarted", ", ".join(dead))
            status = 1
            stop.set()
    if server is not None:
        server.shutdown()
    for thread in threads:
        thread.join(timeout=15)
    services.close()
    forget_process_metrics(os.getpid())  # a stopped worker's lag is no lag of the service's
    return status


def serve_api(settings: Settings, host: str, port: int, *, workers: int = 1,
              threads: int = 8) -> None:
    """Serve the API under granian until SIGTERM (graceful) or SIGINT. With several workers,
    the caller has pointed Prometheus at a shared folder first (`use_prometheus_dir`)."""
    log.info("abvoc API on http://%s:%d: granian, %d workers × %d threads", host, port,
             workers, threads)
    serve_wsgi(api_in_worker, settings, host, port, workers=workers, threads=threads)


def api_in_worker(settings: Settings) -> Flask:
    """The API in a server's worker process. The parent checked the bus and migrated the store
    before the first worker started; a worker started again during an outage (its predecessor
    killed) waits for the store, and leaves the bus (which serving never calls: events wait in
    the outbox) to /readyz. Exiting instead read as a crash loop to granian, which then stopped
    the healthy workers too."""
    return create_app(settings, connect(settings, migrate=False, check_bus=False,
                                        wait_for_store=True))


def serve_dashboard(settings: Settings, host: str, port: int, *, workers: int = 1,
                    threads: int = 8, dev: bool = False) -> None:
    """Serve the dashboard alone (no prediction API) until SIGTERM or SIGINT: under granian,
    or Werkzeug's server with ``dev``. Sessions hold across workers: they are signed with a
    key derived from the shared secret."""
    log.info("abvoc dashboard on http://%s:%d/dashboard/", host, port)
    if dev:
        server = make_server(host, port, create_dashboard_app(settings), threaded=True)
        # Handlers of its own: a process started in the background of a script inherits SIGINT
        # ignored, and Python then never turns it into KeyboardInterrupt.
        stop = stop_on_signals()
        thread = _thread("dashboard", server.serve_forever)
        while not stop.wait(0.5) and thread.is_alive():
            pass
        server.shutdown()
        server.server_close()
        return
    serve_wsgi(create_dashboard_app, settings, host, port, workers=workers, threads=threads)


def weekly_report_task(db: Database, settings: Settings) -> Callable[[], None]:
    """What `abvoc up` runs every hour: the weekly report of the due week (the last full ISO
    week, from Monday 06:00 UTC) into `<data_dir>/reports`, once (later runs find it written),
    and the current week so far every ABVOC_REPORT_TO_DATE_HOURS."""
    from dashboards.report import reports_dir, write_scheduled

    every = settings.report_to_date_hours
    to_date_every = timedelta(hours=every) if every else None

    def run() -> None:  # logs each report it writes
        write_scheduled(db, reports_dir(settings.data_dir), to_date_every)

    return run


def run_up(settings: Settings, host: str, port: int, *, workers: int, threads: int = 8,
           config_file: str | None = None, prune_every_s: float = 3600.0,
           report_every_s: float = 3600.0) -> None:
    """Run the API (granian), the relay and the worker as supervised child processes, and
    prune and write the weekly report on a schedule, until SIGTERM/SIGINT. Prometheus samples
    of every process go to one folder in shared memory (app.supervisor.metrics_folder), so
    /metrics counts across all of them."""
    check_port_free(host, port)
    metrics_dir = os.environ.get(PROMETHEUS_DIR_VAR) or use_prometheus_dir(settings.data_dir)
    root = str(Path(app_package.__file__).resolve().parent.parent)
    extra = {PROMETHEUS_DIR_VAR: metrics_dir,
             "PYTHONPATH": os.pathsep.join(
                 p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    if config_file:
        extra["ABVOC_CONFIG"] = config_file
    if not settings.expect_parts:  # /readyz: these parts run here, so their absence is news
        extra["ABVOC_EXPECT_PARTS"] = "relay,worker"
    cli = [sys.executable, "-m", "app"]
    children = [
        Child("api", [*cli, "serve", "--host", host, "--port", str(port),
                      "--workers", str(workers), "--threads", str(threads)]),
        Child("relay", [*cli, "relay"]),
        Child("worker", [*cli, "worker", "--no-relay"]),
    ]
    from app.metrics import part_restarts

    restarts = part_restarts()
    db = Database(settings.database_url)
    retention = timedelta(days=settings.retention_days)
    embedded = settings.bus.kind == "embedded"

    def prune_now() -> None:
        log.info("retention: pruned %s", prune(db, retention, embedded=embedded).as_dict())
        log.info("retention: pruned %d kept inputs",
                 prune_inputs(db, settings.input_retention_hours,
                              embedded=embedded))

    report_now = weekly_report_task(db, settings)

    log.info("abvoc up: API on http://%s:%d (%d workers), relay and worker supervised; "
             "data in %s", host, port, workers, settings.data_dir)
    try:
        Supervisor(children, child_env(os.environ, **extra),
                   on_restart=lambda name: restarts.labels(name).inc(),
                   periodic=[(prune_every_s, prune_now),
                             (report_every_s, report_now)]).run(stop_on_signals())
    finally:
        db.dispose()
