"""`abvoc up` as a user runs it: granian worker processes, a supervised relay and worker, a
secret key made for the data folder, metrics summed over processes, a killed worker restarted,
retention on a schedule, and SIGTERM stopping everything, each API worker closing its app."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth import create_key
from core import receipts
from core.settings import Secret
from core.store import schema
from core.store.db import Database
from core.store.models import Prediction
from dashboards.report import due_week
from serving.images import encode_png
from serving.registry import Registry
from tests.app.conftest import register
from tests.app.test_predict_flow import _image
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def _wait(check, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"abvoc up exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def _http(url: str, body: dict | None = None, headers: dict | None = None,
          timeout: float = 10) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={
        **(headers or {}), **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _up(url: str) -> bool:
    try:
        return _http(url, timeout=5)[0] == 200
    except OSError:
        return False


def _metrics(base: str) -> str:
    return _http(f"{base}/metrics")[1]


def _healthz_count(base: str) -> float:
    text = _metrics(base)
    found = re.search(r'^abvoc_http_requests_total\{endpoint="/healthz",method="GET",'
                      r'status="200"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _children(pid: int) -> list[tuple[int, list[str]]]:
    """Live (not zombie) child processes of `pid` and their command lines, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append((int(entry.name),
                            (entry / "cmdline").read_bytes().decode().split("\0")))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _child(pid: int, part: str) -> int | None:
    """The pid of `abvoc up`'s child running `part` (its command: python -m app <part>)."""
    command = {"api": "serve", "relay": "relay", "worker": "worker"}[part]
    return next((c for c, argv in _children(pid) if argv[3:4] == [command]), None)


def _family(pid: int) -> set[int]:
    found = {pid}
    for child, _ in _children(pid):
        found |= _family(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] \
            != "Z"
    except OSError:
        return False


def test_up_serves_supervises_and_stops(tmp_path: Path, trained_models: Path) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'abvoc.db'}"
    with Database(url) as db:
        schema.upgrade(db)
        register(Registry(db), trained_models)
        key = create_key(db, ["predict", "admin"], name="up")["key"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(data), ABVOC_LOG_LEVEL="INFO", PYTHONPATH=str(REPO))
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "up", "--no-train", "--workers", "2", "--port",
             str(port), "--threads", "4", "--prune-every", "5", "--report-every", "5"],
            cwd=tmp_path, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _up(f"{base}/healthz"), 240, "the API", proc, log)

        # A fresh data folder got its own key, readable by its owner only.
        key_file = data / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        secret = Secret(key_file.read_text().strip())

        # Several granian worker processes behind one port.
        api = _child(proc.pid, "api")
        assert api is not None and len(_children(api)) == 2
        # The API knows the relay and the worker run here: /readyz judges them even before
        # their first heartbeat (without it, parts that never beat looked like parts not run).
        assert b"ABVOC_EXPECT_PARTS=relay,worker\0" in (Path("/proc") / str(api) / "environ") \
            .read_bytes()
        ready = _wait(lambda: (r := _http(f"{base}/readyz"))[0] == 200 and json.loads(r[1]),
                      60, "/readyz", proc, log)
        assert ready["checks"]["relay"] == ready["checks"]["worker"] == "ok"

        status, text = _http(f"{base}/v1/predict", headers={"Authorization": f"Bearer {key}"},
                             body={"image_base64": base64.b64encode(
                                 encode_png(_image(0).image)).decode(), "unit_id": "u1"},
                             timeout=120)
        assert status == 200, text
        body = json.loads(text)
        assert receipts.verify(secret, body["prediction_id"], body["receipt"])

        # /metrics answers from one worker but counts every worker's requests.
        before = _healthz_count(base)
        for _ in range(20):
            assert _http(f"{base}/healthz")[0] == 200
        assert _healthz_count(base) - before == 20

        # kill -9 the evaluation worker: the supervisor starts a new one.
        old_pid = _child(proc.pid, "worker")
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        new = _wait(lambda: (c := _child(proc.pid, "worker")) not in (None, old_pid) and c,
                    60, "a new worker", proc, log)
        assert re.search(rf"worker \(pid {old_pid}\) exited with signal SIGKILL; restarting",
                         log.read_text())
        _wait(lambda: 'abvoc_part_restarts_total{part="worker"} 1.0' in _metrics(base), 30,
              "the restart counter", proc, log)

        # The relay and the new worker carry the prediction into the evaluation store.
        def stored() -> bool:
            with Database(url) as db, db.session() as s:
                return s.scalar(select(Prediction.prediction_id).where(
                    Prediction.prediction_id == body["prediction_id"])) is not None
        _wait(stored, 120, "the prediction in the evaluation store", proc, log)

        # Retention runs on its schedule (every 5 s here, hourly by default).
        _wait(lambda: "retention: pruned" in log.read_text(), 60, "a prune", proc, log)
        # So does the weekly report: the due week's, written once into <data_dir>/reports.
        # Its log line follows the file (the browser's profile is cleaned up between them).
        due = due_week(datetime.now(UTC))
        _wait(lambda: f"weekly report {due} written" in log.read_text(), 120,
              "the weekly report", proc, log)
        assert (data / "reports" / f"{due}.pdf").exists()
        assert log.read_text().count(f"weekly report {due} written") == 1

        family = _family(proc.pid)
        assert new in family and len(family) == 6  # up, serve + 2 workers, relay, worker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()[-4000:]
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in family if _alive(p)]
        assert "all parts stopped" in log.read_text()
        # Each API worker closed its app on the way out (shadows run, writes flushed).
        workers = re.findall(r"server worker process (\d+) closed its app", log.read_text())
        assert len(set(workers)) == 2, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            for pid in _family(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=30)
