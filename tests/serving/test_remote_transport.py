"""The remote client's HTTP transport (libcurl through pycurl) against tiny local servers:
connections kept alive and shared by threads, answers past the size limit and answers broken
off mid-way refused with a clear error, a large body sent without waiting for a 100-continue,
proxies from the environment ignored, and NaN in an answer read as Python-based servers write it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

import serving.remote
from serving.remote import RemoteClient, RemoteError, RemoteUnavailable
from tests.support.ports import free_port
from tests.support.stub_server import StubServer, reply

ANSWER = {"model_name": "iris", "outputs": [
    {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}]}


def _row(n: int = 1) -> np.ndarray:
    return np.full((n, 4), 5.0, np.float32)


def test_connections_are_kept_alive_and_shared_by_threads(
        stub_server: Callable[..., StubServer]) -> None:
    peers: list[tuple[str, int]] = []

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        peers.append(handler.client_address)
        reply(handler, 200, ANSWER)

    server = stub_server(answer)
    with RemoteClient(server.url, "iris", timeout_ms=5000, pool_size=4) as client:
        for _ in range(20):
            assert client.infer({"features": _row()})["label"].tolist() == [b"setosa"]
        assert len(set(peers)) == 1  # one after another: one connection
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: client.infer({"features": _row()}), range(200)))
    assert all(a["label"].tolist() == [b"setosa"] for a in answers)
    assert len(peers) == 220
    # Four threads at once need four connections, kept for the next calls: a burst may open a
    # few more while handles are busy, never one per call.
    assert 1 < len(set(peers)) <= 12, len(set(peers))


def test_an_answer_past_the_size_limit_is_refused(
        stub_server: Callable[..., StubServer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving.remote, "_MAX_BODY", 1000)
    big = {"model_name": "iris", "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["x" * 5000]}]}
    server = stub_server(lambda h, body: reply(h, 200, big))
    with RemoteClient(server.url, "iris", timeout_ms=5000) as client, \
            pytest.raises(RemoteError, match="larger than 1000 bytes") as info:
        client.infer({"features": _row()})
    assert info.value.status == 502
    # The handle is fine afterwards: the next answer within the limit gets through.
    monkeypatch.setattr(serving.remote, "_MAX_BODY", 64 << 20)
    with RemoteClient(server.url, "iris", timeout_ms=5000) as client:
        assert client.infer({"features": _row()})["label"].tolist() == [b"x" * 5000]


def test_an_answer_broken_off_is_unavailable_and_retried(
        stub_server: Callable[..., StubServer]) -> None:
    def cut(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"outputs": [')
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(2)

    server = stub_server(cut)
    with RemoteClient(server.url, "iris", timeout_ms=3000, retries=2) as client, \
            pytest.raises(RemoteUnavailable, match="broke off its answer") as info:
        client.infer({"features": _row()})
    assert info.value.status == 503
    assert server.hits == 3  # the first attempt and both retries


def test_a_large_body_goes_without_waiting_for_100_continue(
        stub_server: Callable[..., StubServer]) -> None:
    sizes: list[int] = []

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        sizes.append(len(body))
        assert handler.headers.get("Expect") is None
        reply(handler, 200, ANSWER)

    server = stub_server(answer)
    rows = _row(100_000)  # 400,000 values: several MB of V2 JSON
    with RemoteClient(server.url, "iris", timeout_ms=10000) as client:
        start = time.monotonic()
        client.infer({"features": rows})
        took = time.monotonic() - start
    assert sizes and sizes[0] > 1 << 20
    assert took < 0.9, took  # libcurl would otherwise wait up to 1 s for "100 Continue"


def test_proxies_in_the_environment_are_ignored(
        stub_server: Callable[..., StubServer], monkeypatch: pytest.MonkeyPatch) -> None:
    server = stub_server(lambda h, body: reply(h, 200, ANSWER))
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with RemoteClient(server.url, "iris", timeout_ms=3000) as client:
        assert client.infer({"features": _row()})["label"].tolist() == [b"setosa"]


def test_an_answer_holding_nan_is_read_as_python_based_v2_servers_write_it(
        stub_server: Callable[..., StubServer]) -> None:
    """Bodies are read by orjson, which has no word for NaN: an answer holding one (the
    standard library's NaN token) is read by the standard library. A request never holds one:
    JSON cannot carry it (test_remote.py::test_nan_is_never_written_into_a_json_body)."""

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, {"model_name": "iris", "outputs": [
            {"name": "p", "datatype": "FP32", "shape": [2], "data": [float("nan"), 1.0]}]})

    server = stub_server(answer)
    with RemoteClient(server.url, "iris", timeout_ms=5000) as client:
        out = client.infer({"features": np.array([[0.5, 1, 2, 3]], np.float32)})
    assert math.isnan(out["p"][0]) and out["p"][1] == 1.0
