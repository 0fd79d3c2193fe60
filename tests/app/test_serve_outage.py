"""`abvoc serve --workers N` through a store outage: a worker process killed while PostgreSQL is
down is started again and waits for the store, instead of exiting at once, which granian read
as a crash loop and answered by stopping the healthy workers too (found by a PostgreSQL + Kafka
deployment pass: the API never came back after the database did)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.test_http_server import REPO, exchange
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
READY = b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped and started again."""
    server = PostgresServer().start()
    yield server
    server.stop()


def _workers(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _until(check: object, log: Path, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


def _serve(tmp_path: Path, *args: str, command: str = "serve",
           **env_extra: str) -> tuple[subprocess.Popen, int, Path]:
    """`abvoc serve ARGS` (or `command`) on a free port in its own process: (the process, its
    port, its log)."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(tmp_path / "data"), ABVOC_LOG_LEVEL="INFO",
               PYTHONPATH=str(REPO), **env_extra)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", command, "--port", str(port),
                                 "--threads", "2", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
    return proc, port, log


def test_a_worker_restarted_during_a_store_outage_waits_and_the_api_comes_back(
        own_postgres: PostgresServer, tmp_path: Path) -> None:
    url = own_postgres.create_database(migrated=True)
    proc, port, log = _serve(tmp_path, "--workers", "2", ABVOC_DATABASE_URL=url)
    try:
        _until(lambda: exchange(port, READY)[0] == 200, log, 120, "never ready")
        _until(lambda: len(_workers(proc.pid)) == 2, log, 30, "not 2 workers")
        own_postgres.halt()
        victim = _workers(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        _until(lambda: "this process waits for it" in log.read_text(), log, 60,
               "the new worker did not wait for the store")
        time.sleep(3)  # long enough for granian to call a crash loop
        assert proc.poll() is None, log.read_text()[-3000:]
        assert exchange(port, HEALTH)[0] == 200  # the healthy worker still answers
        own_postgres.start()
        _until(lambda: exchange(port, READY)[0] == 200, log, 60, "not ready after the store")
        assert victim not in _workers(proc.pid) and len(_workers(proc.pid)) == 2
        assert "crash loop" not in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("dev", [[], ["--dev"]], ids=["granian", "dev"])
def test_the_api_starts_while_the_bus_is_down_and_says_so(tmp_path: Path, dev: list[str]) -> None:
    """It never calls the bus (events wait in the outbox): a restart during a broker's
    maintenance must not keep it down. /readyz still says the bus is down. (`--dev`, Werkzeug's
    server in one process, refused to start.)"""
    proc, port, log = _serve(tmp_path, *dev, ABVOC_BUS_URL=f"kafka://127.0.0.1:{free_port()}")
    try:
        _until(lambda: exchange(port, HEALTH)[0] == 200, log, 120, "never served")
        status, body, _ = exchange(port, READY)
        assert status == 503 and "bus" in str(body), body
        assert "is unreachable" in log.read_text() and "serving anyway" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_up_starts_while_the_bus_is_down_and_its_parts_wait_for_it(tmp_path: Path) -> None:
    """`abvoc up` refused to start without the broker while `serve` served: restarting it in
    a broker outage (a deploy, a reboot) took the API down with the broker."""
    proc, port, log = _serve(tmp_path, "--no-train", "--workers", "1", command="up",
                             ABVOC_BUS_URL=f"kafka://127.0.0.1:{free_port()}")
    try:
        _until(lambda: exchange(port, HEALTH)[0] == 200, log, 120, "never served")
        status, body, _ = exchange(port, READY)
        assert status == 503 and body["checks"]["bus"].startswith("unreachable"), body
        assert "serving anyway" in log.read_text() and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_up_s_parts_stop_when_up_is_killed(tmp_path: Path) -> None:
    """`kill -9` of `abvoc up` left its API, relay and worker running with nothing to restart
    them, /readyz still ready, and the next `abvoc up` failed on the port."""
    proc, port, log = _serve(tmp_path, "--no-train", "--workers", "1", command="up")
    family: list[int] = []
    try:
        _until(lambda: exchange(port, READY)[0] == 200, log, 180, "never ready")
        children = _workers(proc.pid)
        family = children + [g for c in children for g in _workers(c)]
        assert len(children) == 3, children  # the API's server, the relay, the worker
        proc.kill()
        proc.wait(timeout=30)
        _until(lambda: not any(_running(p) for p in family), log, 60,
               "up's parts outlived it")
        assert exchange(port, HEALTH)[0] == 0  # the port is free for the next `abvoc up`
    finally:
        proc.kill()
        for p in filter(_running, family):
            os.kill(p, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_workers_stop_when_their_server_process_is_killed(tmp_path: Path) -> None:
    """They kept serving as orphans on the port, and every new `abvoc serve` failed with
    "Address already in use" until someone found and killed them."""
    proc, port, log = _serve(tmp_path, "--workers", "2")
    workers: list[int] = []
    try:
        # As soon as both are forked: a worker still loading its app must stop too (its first
        # stop signal can come before the server's handler is in place).
        _until(lambda: len(_workers(proc.pid)) == 2, log, 120, "not 2 workers")
        workers = _workers(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        _until(lambda: not any(_running(w) for w in workers), log, 30,
               "the workers outlived their server")
        assert exchange(port, HEALTH)[0] == 0  # nobody answers on the port any more
        assert "is gone; process" in log.read_text()
    finally:
        proc.kill()
        for w in filter(_running, workers):
            os.kill(w, signal.SIGKILL)


def test_readyz_answers_within_a_probe_s_timeout_while_the_broker_is_gone(
        tmp_path: Path) -> None:
    """It waited 5 s for the broker, longer than many monitors wait for the probe."""
    proc, port, log = _serve(tmp_path, ABVOC_BUS_URL=f"kafka://127.0.0.1:{free_port()}")
    try:
        _until(lambda: exchange(port, HEALTH)[0] == 200, log, 120, "never served")
        started = time.monotonic()
        status, body, _ = exchange(port, READY)
        assert status == 503 and body["checks"]["bus"].startswith("unreachable"), body
        assert time.monotonic() - started < 3.0
    finally:
        proc.kill()
        proc.wait(timeout=30)
