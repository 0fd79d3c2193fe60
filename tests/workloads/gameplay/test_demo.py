"""`abvoc demo` on a data folder whose candidates are trained: it prints the dashboard's address
and a key that logs in, serves, and its simulated customers fill both experiments through the
public API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from core.store import schema
from core.store.db import Database
from serving.registry import Registry
from tests.app.conftest import register
from tests.support.ports import free_port
from workloads.client import ServiceClient
from workloads.gameplay.build import register_and_test

REPO = Path(__file__).resolve().parents[3]


def test_demo_serves_and_fills_both_experiments(tmp_path: Path, trained_models: Path,
                                                built: tuple[Path, dict[str, Any]]) -> None:
    data = tmp_path / "data"
    with Database(f"sqlite:///{data / 'abvoc.db'}") as db:
        schema.upgrade(db)
        register(Registry(db), trained_models)
        register_and_test(Registry(db), data / "models", built[0])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(data), PYTHONPATH=str(REPO))
    log = tmp_path / "demo.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "app", "demo", "--port", str(port),
                                 "--requests", "60", "--matches", "20", "--players", "10",
                                 "--workers", "2", "--threads", "4"], cwd=tmp_path, env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 420
        while "matches played" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-4000:]
            assert "customers stopped" not in log.read_text(), log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        text = log.read_text()
        found = re.search(r"dashboard: (http://\S+/dashboard/)\s+\(log in with the key (\S+)\)",
                          text)
        assert found, text[-4000:]
        key = found.group(2)
        assert "60 formulas read" in text
        client = ServiceClient(f"http://127.0.0.1:{port}", key)
        experiments = client.call("GET", "/v1/experiments")["experiments"]
        assert {e["scope"] for e in experiments} == {"formulas", "gameplay"}
        formulas = next(e for e in experiments if e["scope"] == "formulas")
        assert [a["candidate"] for a in formulas["arms"]] == \
            ["ocr-small-printed", "ocr-small-mixed", "ocr-large-mixed"]
        assert formulas["shadows"][0]["candidate"] == "ocr-large-mixed"
        client.close()
        with urllib.request.urlopen(found.group(1), timeout=30) as page:  # to the login
            assert page.status == 200 and "<title>abvoc: log in</title>" in page.read().decode()
    finally:
        proc.terminate()
        proc.wait(60)
