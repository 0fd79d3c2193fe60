"""The production HTTP server (granian, `abvoc serve`) keeps the input limits the app sets: a
body over the limit is answered 413 before the client has sent it, a chunked body is read up to
the limit and no further, and a chunked body under it reaches the app whole."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.auth import create_key
from app.inputs import MAX_BODY_BYTES
from core.store import schema
from core.store.db import Database
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, Path]]:
    """`abvoc serve` on a fresh SQLite store: (port, an admin key, its log)."""
    data = tmp_path_factory.mktemp("served") / "data"
    with Database(f"sqlite:///{data / 'abvoc.db'}") as db:
        schema.upgrade(db)
        key = create_key(db, ["admin"], name="http")["key"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(data), ABVOC_LOG_LEVEL="INFO", PYTHONPATH=str(REPO))
    log = data.parent / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port),
                                 "--threads", "2"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=data.parent)
    try:
        deadline = time.monotonic() + 120
        while exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")[0] != 200:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield port, key, log
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert "closed its app" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def exchange(port: int, head: bytes, chunks: Iterator[bytes] = iter(()),
             timeout: float = 10) -> tuple[int, dict, int]:
    """Send `head`, then `chunks` until the server answers or stops reading: (status, the JSON
    answer, bytes of the body sent). Status 0 when nothing answered."""
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(head)
            sock.settimeout(0.05)
            answer = b""
            for chunk in chunks:
                try:
                    answer += sock.recv(65536)
                    if answer:
                        break
                except TimeoutError:
                    pass
                try:
                    sock.sendall(chunk)
                except OSError:  # the server closed its side after answering
                    break
                sent += len(chunk)
            sock.settimeout(timeout)
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
            status_line, _, rest = answer.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            while length is not None and len(body) < length:
                part = sock.recv(65536)
                if not part:
                    break
                body += part
    except OSError:
        return 0, {}, sent
    status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/") else 0
    return status, json.loads(body) if body.startswith(b"{") else {}, sent


def test_a_body_over_the_limit_is_refused_before_it_is_sent(served: tuple) -> None:
    port, key, _ = served
    size = 50 * 2**20
    head = (f"POST /v1/experiments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
    status, answer, sent = exchange(port, head, (b"[" * 65536 for _ in range(size // 65536)))
    assert status == 413 and "limit" in answer["error"]
    assert sent < size // 4, sent  # answered long before the client was done


def test_a_chunked_body_is_read_up_to_the_limit_and_no_further(served: tuple) -> None:
    port, key, _ = served
    head = (f"POST /v1/experiments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"[" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    status, answer, sent = exchange(port, head, (chunk for _ in range(4 * MAX_BODY_BYTES
                                                                       // len(piece))))
    assert status == 413 and "limit" in answer["error"]
    assert sent < 3 * MAX_BODY_BYTES, sent


def test_a_chunked_body_under_the_limit_reaches_the_app_whole(served: tuple) -> None:
    port, key, _ = served
    body = json.dumps({"name": "chunked", "arms": "not a list"}).encode()
    head = (f"POST /v1/experiments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    halves = [body[:10], body[10:]]
    chunks = [f"{len(h):x}\r\n".encode() + h + b"\r\n" for h in halves] + [b"0\r\n\r\n"]
    status, answer, _ = exchange(port, head, iter(chunks))
    assert status == 400 and "arms" in answer["error"], answer


def test_compressed_bodies_are_inflated_under_the_production_server(served: tuple) -> None:
    """gzip, sent chunked or with a length, reaches the app inflated; a bomb stops at the
    inflating bound (granian hands the middleware its own input stream)."""
    port, key, _ = served
    body = gzip.compress(json.dumps({"name": "packed", "arms": "not a list"}).encode())
    head = (f"POST /v1/experiments HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\n")
    status, answer, _ = exchange(port, f"{head}Content-Length: {len(body)}\r\n\r\n".encode(),
                                 iter([body]))
    assert status == 400 and "'arms'" in answer["error"], answer
    chunks = [f"{len(body):x}\r\n".encode() + body + b"\r\n", b"0\r\n\r\n"]
    status, answer, _ = exchange(port, f"{head}Transfer-Encoding: chunked\r\n\r\n".encode(),
                                 iter(chunks))
    assert status == 400 and "'arms'" in answer["error"], answer
    bomb = gzip.compress(bytes(40 << 20), compresslevel=1)
    status, answer, _ = exchange(port, f"{head}Content-Length: {len(bomb)}\r\n\r\n".encode(),
                                 iter([bomb]))
    assert status == 413 and "inflates past the limit" in answer["error"], answer


def _infer_with(served: tuple, headers: bytes) -> tuple[int, dict]:
    """A V2 infer request through the served granian with these raw header lines added."""
    port, key, _ = served
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                                   "data": [5.1, 3.5, 1.4, 0.2]}],
                       "parameters": {"unit_id": "u1"}}).encode()
    head = (f"POST /v2/models/default/infer HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            ).encode() + headers + b"\r\n"
    status, answer, _ = exchange(port, head, iter([body]))
    return status, answer


@pytest.mark.parametrize(("header", "value", "words"), [
    ("X-Abvoc-Force-Arm", "trésor".encode(), "tr%C3%A9sor"),
    ("X-Abvoc-Unit-Id", "élève".encode(), "'parameters.unit_id'"),
    ("Idempotency-Key", b"", "1 to 128 ASCII characters"),
])
def test_a_header_value_that_is_not_ascii_is_a_400_saying_what_to_send(
        served: tuple, header: str, value: bytes, words: str) -> None:
    """granian hands the app a header value that is not ASCII as '': a forced arm was read as
    none (the QA request counted in the experiment), a unit id refused without saying why."""
    status, answer = _infer_with(served, header.encode() + b": " + value + b"\r\n")
    assert status == 400, answer
    assert answer["error"].startswith(f"header '{header}' is empty: header values must be "
                                      "non-empty ASCII text"), answer
    assert words in answer["error"], answer


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Abvoc-Unit-Id", "X-Abvoc-Force-Arm"])
def test_a_header_sent_twice_is_a_400_not_its_values_joined(served: tuple, header: str) -> None:
    """The server joins a repeated header's values with a comma: two Idempotency-Keys were one
    key 'aa1,bb2' (a retry with either alone stored again), two unit ids one unit."""
    status, answer = _infer_with(served, f"{header}: aa1\r\n{header}: bb2\r\n".encode())
    assert status == 400, answer
    assert answer["error"].startswith(f"header '{header}' holds a comma: a header sent twice"), \
        answer
