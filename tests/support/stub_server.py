"""A tiny HTTP server whose answers a test scripts (hang, trickle, 500, echo), for the remote
client's and the /v2 route's failure tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class StubServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose POST handler is `behave(handler, body)`; GETs
    go to `behave` too with `gets` (else http.server answers them 501)."""

    def __init__(self, behave: Callable[[BaseHTTPRequestHandler, bytes], None],
                 gets: bool = False) -> None:
        self.hits = 0
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                stub.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                behave(self, body)

            if gets:
                def do_GET(self) -> None:  # noqa: N802
                    stub.hits += 1
                    behave(self, b"")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub_server() -> Iterator[Callable[..., StubServer]]:
    """Make stub servers (`stub_server(behave)`); each is closed after the test."""
    made: list[StubServer] = []

    def make(behave: Callable[[BaseHTTPRequestHandler, bytes], None],
             gets: bool = False) -> StubServer:
        made.append(StubServer(behave, gets))
        return made[-1]

    yield make
    for s in made:
        s.close()


def reply(handler: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
