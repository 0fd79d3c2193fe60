"""Long-running processes: the API server, the outbox relay and the evaluation worker.

Each runs until a shared stop event is set; SIGINT/SIGTERM set it, so shutdown is clean and the
consumer commits nothing it has not applied.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from werkzeug.serving import make_server

from app import create_app
from core.outbox import OutboxRelay
from core.startup import Services
from evaluation.worker import run_worker

log = logging.getLogger("abvoc")


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
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
) -> None:
    """Run the chosen parts in this process until `stop` is set."""
    threads = []
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
        server = make_server(api[0], api[1], create_app(services=services), threaded=True)
        log.info("abvoc API listening on http://%s:%d", api[0], server.server_port)
        threads.append(_thread("api", server.serve_forever))
    stop.wait()
    if server is not None:
        server.shutdown()
    for thread in threads:
        thread.join(timeout=15)
    services.close()
