"""The servers the serving benchmarks (bench_v2, bench_api) start in processes of their own:
abvoc's app and the bare anchors, each under the HTTP server `abvoc up` runs (or werkzeug's), so
only the application differs."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np


def run_server(factory: Callable[[Any], Callable], settings: Any, port: int,
               server: str, workers: int = 1) -> None:
    """Serve `factory(settings)` until SIGTERM: under granian as `abvoc serve` does (one worker
    process by default, as its `--workers` says; 8 threads; each worker builds the app) or
    werkzeug's threaded server."""
    if server == "granian":
        from app.http_server import serve_wsgi

        serve_wsgi(factory, settings, "127.0.0.1", port, workers=workers, threads=8)
    else:
        from werkzeug.serving import make_server

        make_server("127.0.0.1", port, factory(settings), threaded=True).serve_forever()


# Why each well-known V2 server runs one process (tests/support/inference_servers.py starts both).
ONE_PROCESS = {"MLServer": "MLServer 1.7.1's parallel workers crash with current uvloop",
               "KServe": "started with --workers 1, as MLServer must be"}


def same_model_line(known: str, ratio: float, workers: int) -> str:
    """The throughput ratio to `known` serving the same model, with why it is like with like
    only at one abvoc worker: each server's own reason, not MLServer's for both."""
    return (f"  throughput abvoc/{known} serving the same model {ratio:.3f} (abvoc {workers} "
            f"worker process(es), {known} one: {ONE_PROCESS[known]})")


def wait_ready(url: str, process: Any) -> None:
    """Until `url` answers (the server binds before its worker has built the app); raises if
    `process` (the server's) dies first."""
    import requests

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError(f"the server for {url} died while starting")
        try:
            requests.get(url, timeout=30)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within 300 s")


def bare_wsgi(session: Any, upstream: str | None) -> Callable:
    """The least an HTTP wrapper around onnxruntime does: parse V2 JSON, run, answer V2 JSON.
    POST /forward is the least a proxy does: pass the body to `upstream` through libcurl, as
    abvoc's remote client does (one handle, and so one kept-alive connection, per thread), and
    return its answer."""
    import threading

    from benchmarks.http_load import post, post_handle

    classes = ["setosa", "versicolor", "virginica"]
    local = threading.local()

    def forward(body: bytes) -> tuple[int, bytes]:
        handle = getattr(local, "handle", None)
        if handle is None:
            handle = local.handle = post_handle(upstream)
        return post(handle, body)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "POST":  # the readiness probe
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        if environ["PATH_INFO"] == "/forward" and upstream:
            status, data = forward(body)
            start_response(f"{status} {HTTPStatus(status).phrase}",
                           [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
            return [data]
        tensor = json.loads(body)["inputs"][0]
        rows = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        probs = session.run(["probabilities"], {"features": rows})[0]
        out = json.dumps({"model_name": "bare", "outputs": [
            {"name": "output", "datatype": "BYTES", "shape": [len(probs)],
             "data": [classes[i] for i in probs.argmax(axis=1)]}]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(out)))])
        return [out]

    return app


def serve_bare(model: Path, port: int, server: str, upstream: str | None,
               workers: int = 1) -> None:
    """The bare WSGI wrapper around one onnxruntime session of `model` (and the bare proxy to
    `upstream`), under the same server as abvoc."""
    from core.settings import load_settings

    def factory(_settings: Any) -> Callable:  # onnxruntime only after the server forks its worker
        import onnxruntime as ort

        return bare_wsgi(ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]),
                         upstream)

    run_server(factory, load_settings(env={}), port, server, workers)


def setup_keys(ports: mp.Queue, server: mp.Process) -> tuple:
    """The keys the set-up process puts, or an error as soon as it dies while setting up."""
    import queue

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            return ports.get(timeout=1)
        except queue.Empty:
            if not server.is_alive():
                raise RuntimeError("the set-up process died") from None
    raise TimeoutError("the set-up was not done after 300 s")


def ort_load(session, rows: np.ndarray, concurrency: int) -> tuple[float, list[float]]:  # noqa: ANN001
    def one(row: np.ndarray) -> float:
        start = time.perf_counter()
        session.run(["probabilities"], {"features": row[None, :]})
        return (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, rows))
    return len(rows) / (time.perf_counter() - start), latencies
