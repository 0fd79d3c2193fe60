"""The HTTP load loop the serving benchmarks share: C threads, each with one kept-alive libcurl
handle, POST the same pre-encoded JSON bodies to a URL.

The client must not be what limits the figures. With `requests`, 8 client threads spent about
0.7 ms of the client's interpreter per call: a bare WSGI wrapper that answers in a fraction of
that topped out near 1,000 requests/s, the client's ceiling, not the server's. libcurl does the
HTTP work with the GIL released, so the server under test is what the rates measure; bodies are
encoded to JSON once, before the clock, for every side alike.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pycurl


def post_handle(url: str, headers: Sequence[str] = ()) -> pycurl.Curl:
    """A libcurl handle that POSTs JSON (another Content-Type when `headers` name one) to `url`
    and keeps its connection alive between calls (no proxy from the environment, no signals,
    no wait for `100 Continue`)."""
    handle = pycurl.Curl()
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.PROXY, "")
    handle.setopt(pycurl.URL, url)
    typed = any(h.lower().startswith("content-type:") for h in headers)
    handle.setopt(pycurl.HTTPHEADER, [*headers, *([] if typed else
                                                  ["Content-Type: application/json"]), "Expect:"])
    return handle


def post(handle: pycurl.Curl, body: bytes) -> tuple[int, bytes]:
    """One POST of `body` on a `post_handle`: (the status, the answer)."""
    answer = io.BytesIO()
    handle.setopt(pycurl.POSTFIELDS, body)
    handle.setopt(pycurl.WRITEDATA, answer)
    handle.perform()
    return handle.getinfo(pycurl.RESPONSE_CODE), answer.getvalue()


def load(url: str, headers: Mapping[str, str], bodies: Sequence[Any],
         concurrency: int, pace_ms: float = 0.0) -> tuple[float, list[float]]:
    """POST each body (as JSON; bytes as they are) to `url` from `concurrency` threads:
    (requests/s, each call's latency in ms). Raises on a status of 400 or more, with the
    server's words.

    `pace_ms` > 0 sends the i-th request no earlier than i * pace_ms after the first (an open
    schedule, as independent callers arrive), instead of each thread's next one the moment its
    last answer is in."""
    fields = [f"{k}: {v}" for k, v in headers.items()]
    encoded = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]
    local = threading.local()
    first = time.perf_counter() + 0.01

    def one(item: tuple[int, bytes]) -> float:
        i, body = item
        handle = getattr(local, "handle", None)
        if handle is None:
            handle = local.handle = post_handle(url, fields)
        if pace_ms:
            wait = first + i * pace_ms / 1000 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        start = time.perf_counter()
        status, answer = post(handle, body)
        took = (time.perf_counter() - start) * 1000
        if status >= 400:
            raise RuntimeError(f"{url} answered {status}: {answer[:300]!r}")
        return took

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, enumerate(encoded)))
    return len(bodies) / (time.perf_counter() - start), latencies
