"""The Operations page with a remote candidate: the iris model on a real MLServer 1.7.1, split
50/50 with the same model as a bundle, driven through POST /v2/models/{scope}/infer; while the
server is frozen (SIGSTOP) its requests time out. After the outbox, the bus and the worker, the
page's callback (as the browser calls it) and the page in headless Chromium list the remote
candidate with the request count, rate, error rate and latency percentiles of what was sent."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from sqlalchemy import select

from core.store.models import Prediction
from dashboards import operations as ops
from dashboards.tables import fmt
from tests.dashboards.test_dashboard_auth import login
from tests.dashboards.test_dashboard_browser import _log_in, _wait
from tests.dashboards.test_pages_data import _call
from tests.support import inference_servers
from tests.support.browser import chromium, console_errors, screenshot
from tests.support.bundles import EXAMPLE
from tests.support.dash_tree import find, text
from tests.support.live import serve
from tests.support.v2 import drain, experiment, flowers, infer_body, remote_bundle, upload

REMOTE = "iris-mlserver"
TIMEOUT_MS = 400
REQUESTS = 60
FROZEN = 4  # requests sent to the remote arm while its server is stopped


@pytest.fixture(scope="module")
def mlserver() -> Iterator[inference_servers.InferenceServer]:
    running = inference_servers.mlserver(EXAMPLE / "model.onnx").start()
    yield running
    running.stop()


def _send(client: Any, headers: dict[str, str], row: np.ndarray, unit: str
          ) -> tuple[int, dict[str, Any], float]:
    start = time.perf_counter()
    response = client.post("/v2/models/flowers/infer", headers=headers,
                           json=infer_body(row[None], unit))
    return response.status_code, response.get_json(), (time.perf_counter() - start) * 1000


def _is_quantile(value: float, values: np.ndarray, q: float) -> None:
    """`value` is a q-quantile of `values`, to the sketch's 1 % buckets and one rank."""
    n = values.size
    assert np.mean(values < value / 1.02) <= q + 1 / n, (value, np.sort(values))
    assert np.mean(values <= value * 1.02) >= q - 1 / n, (value, np.sort(values))


def _rows(table: dict[str, Any]) -> dict[str, list[str]]:
    """A table's body rows, keyed by their first cell."""
    body = table["props"]["children"][1]["props"]["children"]
    cells = [[text(td) for td in tr["props"]["children"]] for tr in body]
    return {row[0]: row[1:] for row in cells}


def test_operations_page_shows_the_remote_candidate(
        dash_app: Flask, mlserver: inference_servers.InferenceServer, admin_key: str,
        tmp_path: Path, database_url: str) -> None:
    client = dash_app.test_client()
    admin = {"Authorization": f"Bearer {admin_key}"}
    upload(client, admin, EXAMPLE)
    upload(client, admin, remote_bundle(tmp_path, REMOTE, mlserver.url, timeout_ms=TIMEOUT_MS))
    experiment(client, admin, "flowers", "iris-onnx", REMOTE)

    arms: dict[str, str] = {}
    # (status, client-side ms, when it was answered) of the remote arm's requests
    remote: list[tuple[int, float, float]] = []
    first = time.monotonic()
    for i, row in enumerate(flowers(REQUESTS, seed=3)):
        status, body, took = _send(client, admin, row, f"user-{i}")
        if status == 200:
            arms[f"user-{i}"] = body["parameters"]["arm"]
        if status != 200 or arms[f"user-{i}"] == "treatment":
            remote.append((status, took, time.monotonic()))
    treated = [u for u, arm in arms.items() if arm == "treatment"]
    assert len(treated) >= FROZEN, arms
    os.killpg(mlserver.proc.pid, signal.SIGSTOP)  # frozen: connections open, no answer
    try:
        for i, unit in enumerate(treated[:FROZEN]):
            status, body, took = _send(client, admin, flowers(1, seed=100 + i)[0], unit)
            assert status == 504 and "did not answer within" in body["error"], body
            remote.append((status, took, time.monotonic()))
    finally:
        os.killpg(mlserver.proc.pid, signal.SIGCONT)
    time.sleep(1)  # the server works off the requests it held while stopped
    for attempt in range(5):  # it answers again (a slow answer is one more timeout, counted)
        status, _, took = _send(client, admin, flowers(1, seed=200 + attempt)[0], treated[0])
        last = time.monotonic()
        remote.append((status, took, last))
        if status == 200:
            break
    assert status == 200
    took_ms = np.array([t for _, t, _ in remote])
    failed = sum(1 for s, _, _ in remote if s != 200)
    assert failed >= FROZEN

    drain(dash_app, REQUESTS + FROZEN + 1 + attempt)
    db = dash_app.extensions["abvoc"].db
    with db.reading() as s:
        stored = np.array(s.scalars(select(Prediction.latency_ms)
                                    .where(Prediction.candidate == REMOTE)).all(), dtype=float)
    assert stored.size == len(remote)

    hourly = ops.hourly(db, None, REMOTE)
    assert sum(r["predictions"] for r in hourly) == len(remote)
    assert sum(r["error_rate"] * r["predictions"] for r in hourly) == pytest.approx(failed)
    row = max(hourly, key=lambda r: r["predictions"])
    # The page's percentiles come from the worker's latency sketch (1 % buckets) of the latencies
    # the service recorded; each of those is within the client's round trip, and a timeout
    # takes at least the deadline.
    for q, key in ((0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")):
        if row["predictions"] == len(remote):
            _is_quantile(row[key], stored, q)
    if row["predictions"] == len(remote):
        assert row["latency_p50_ms"] <= np.quantile(took_ms, 0.5) * 1.02
    # A run across the top of an hour splits its requests in two rows: the timeouts are in one.
    assert max(r["latency_p99_ms"] for r in hourly) >= TIMEOUT_MS * 0.98
    assert all(r["latency_p99_ms"] <= took_ms.max() * 1.02 for r in hourly)
    if len(hourly) == 1:  # (a run across the top of an hour splits its rate in two)
        # The rate over the seconds the service has served, not over the whole hour.
        assert row["requests_per_s"] == pytest.approx(len(remote) / (last - first), rel=0.15)

    recent = {r["candidate"]: r for r in ops.recent(db)}
    mine = recent[REMOTE]
    assert mine["requests"] == len(remote)
    assert mine["error_rate"] == pytest.approx(failed / len(remote))
    assert TIMEOUT_MS * 0.98 <= mine["latency_p99_ms"] <= took_ms.max() * 1.02
    # What was sent: the remote arm's requests over the seconds from its first to its last.
    sent_rate = len(remote) / (remote[-1][2] - remote[0][2])
    assert mine["requests_per_s"] == pytest.approx(sent_rate, rel=0.15)

    # The page, through the callback the browser calls.
    login(client, admin_key, "/dashboard/operations")
    answer = _call(client, ["ops-traffic.children"], [("ops-candidate.value", REMOTE),
                                                      ("ops-span.value", "24")])
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shown = answer.get_json()["response"]["ops-traffic"]["children"]
    ledger = _rows(find(shown, "ops-recent"))
    assert ledger == {REMOTE: [fmt(mine[k]) for k in (
        "requests", "requests_per_s", "error_rate", "latency_p50_ms", "latency_p95_ms",
        "latency_p99_ms")]}
    figure = find(shown, "ops-graph")["props"]["figure"]
    traces = figure["data"]
    assert {t["name"] for t in traces} == {REMOTE}
    by_panel = {t.get("yaxis", "y"): t["y"] for t in traces}
    assert by_panel["y"] == pytest.approx([r["requests_per_s"] for r in hourly])
    assert by_panel["y2"] == pytest.approx([r["error_rate"] for r in hourly])
    assert by_panel["y4"] == pytest.approx([r["latency_p99_ms"] for r in hourly])
    shown_from, shown_to = (np.datetime64(t.replace("+00:00", ""))
                            for t in figure["layout"]["xaxis"]["range"])
    assert shown_to - shown_from >= np.timedelta64(1, "h")  # clock ticks, not milliseconds

    # And in a real browser: both candidates listed, the remote one with those figures.
    db_kind = database_url.split(":")[0].split("+")[0]
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/operations")
        _wait(driver, "#login-form")
        _log_in(driver, admin_key)
        _wait(driver, "#ops-graph .main-svg")
        _wait(driver, "#ops-recent")
        lines = {r.text.split(" ")[0]: r.text.split(" ")[1:] for r in
                 driver.find_elements(By.CSS_SELECTOR, "#ops-recent tbody tr")}
        assert set(lines) == {"iris-onnx", REMOTE}
        assert lines[REMOTE] == ledger[REMOTE]
        screenshot(driver, tmp_path / "screenshots", f"operations-remote-{db_kind}")
        assert console_errors(driver) == []
