"""The V2 lane: `POST /v2/models/{scope}/infer` served around Flask, through the same functions.

Flask's request handling (the request context, URL matching, the before- and after-request
hooks, the response object) took a third of abvoc's own time on this route (0.37 of 1.13 ms a
request in bench_v2 --breakdown), more than any one thing the route does; around it, one worker
answers 1.6 times the requests/s and a call routed to a remote candidate is about 0.4 ms
quicker. This WSGI middleware serves the common case, a well-formed JSON inference request
with a predict key, with the route's own code (app.api.v2's `read_infer` and `reply`, the app's
`serve_counted`, v2_outputs' `encoded`) and the checks Flask's hooks would make (the headers the
app reads, the body's size, depth, numbers and text, the key and its scope, the rate limit), and
counts the request in the same metric. Whatever it does not take goes to the Flask route
unchanged, before anything happens: a query string, a body that is not plain JSON of a known
length (binary tensors, chunked), text or a key the checks refuse, a missing scope. Once it has
begun to serve, an error is answered by the app's own error handlers in a request context, so
its status, body and headers are the Flask route's; answers are compressed as the app's are.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g

from app.api.v2 import INFER_RULE, MAX_BODY_BYTES, TENSOR_NUMBER_BOUND, read_infer, reply
from app.api.v2_outputs import encoded
from app.auth import key_in, key_scopes, within_rate
from app.compressed import ENCODERS, chosen_encoding
from app.inputs import BINARY_KEY, check_read_headers, check_text, environ_key, parse_json
from app.serving import serve_counted

_INFER = re.compile(re.escape(INFER_RULE).replace(re.escape("<scope>"), "([^/]+)"))
CONFIG_KEY = "ABVOC_V2_LANE"  # False: every request goes through Flask (tests compare the two)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class V2Lane:
    """WSGI middleware in front of `app.wsgi_app` (`inner`)."""

    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app, self.inner = app, inner
        self.keys = app.extensions["abvoc_keys"]
        self.serving = app.extensions["abvoc_serving"]
        self.metrics = app.extensions["abvoc_metrics"]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        scope, length = self._route(environ)
        if scope is None:
            return self.inner(environ, start_response)
        started = time.perf_counter()
        try:
            data = environ["wsgi.input"].read(length)
        except Exception:  # noqa: BLE001 - a client gone mid-body: Flask's to answer
            return self.inner(environ, start_response)
        taken = self._take(environ, scope, data) if len(data) == length else None
        if taken is None:  # Flask reads the body again, as it came
            environ["wsgi.input"] = io.BytesIO(data)
            return self.inner(environ, start_response)
        try:
            payload, mimetype, headers = self._serve(environ, scope, *taken)
        except Exception as exc:  # noqa: BLE001 - every error goes to the app's handlers
            environ["wsgi.input"] = io.BytesIO(data)
            return self._error(environ, start_response, exc, started)
        encoding = chosen_encoding(len(payload), environ.get("HTTP_ACCEPT_ENCODING"))
        if encoding is not None:
            payload = ENCODERS[encoding](payload)
            headers["Content-Encoding"] = encoding
        self.metrics.count_request(INFER_RULE, "POST", 200, time.perf_counter() - started)
        start_response("200 OK", [("Content-Type", mimetype),
                                  ("Content-Length", str(len(payload))),
                                  ("Vary", "Accept-Encoding"), *headers.items()])
        return [payload]

    def _route(self, environ: dict[str, Any]) -> tuple[str | None, int]:
        """The scope and body length of a request the lane may take (None: not one)."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING") \
                or not self.app.config.get(CONFIG_KEY, True):
            return None, 0
        path = environ.get("PATH_INFO", "")
        match = _INFER.fullmatch(path) if path.isascii() else None
        length = environ.get("CONTENT_LENGTH") or ""
        if match is None or not length.isdigit() or not 0 < int(length) <= MAX_BODY_BYTES \
                or BINARY_KEY in environ or "HTTP_TRANSFER_ENCODING" in environ:
            return None, 0
        return match.group(1), int(length)

    def _take(self, environ: dict[str, Any], scope: str, data: bytes
              ) -> tuple[str, frozenset[str], Any] | None:
        """The key, its scopes and the parsed body of a request whose checks pass as Flask's
        hooks and the route's `require` would pass them; None: let Flask answer it."""
        try:
            check_text(scope, "path parameter 'scope'")
            check_read_headers(environ)
            key = key_in(environ.get("HTTP_AUTHORIZATION", ""), environ.get("HTTP_X_API_KEY"))
            scopes = key_scopes(self.keys, key)
            if "predict" not in scopes:
                return None
            body = parse_json(data, TENSOR_NUMBER_BOUND)
        except Exception:  # noqa: BLE001 - Flask checks it again and says what is wrong
            return None
        return key, scopes, body  # type: ignore[return-value] - a key has scopes

    def _serve(self, environ: dict[str, Any], scope: str, key: str, scopes: frozenset[str],
               body: Any) -> tuple[bytes, str, dict[str, str]]:
        """The Flask route's steps after its checks: the answer's body, type and headers."""
        within_rate(self.app.extensions.get("abvoc_rate"), self.keys, key)
        call = read_infer(scope, body, None, lambda name: environ.get(environ_key(name)),
                          "admin" in scopes)
        answer = serve_counted(self.serving, self.metrics, call.request, admin=call.admin)
        return encoded(*reply(call, answer), call.wanted, self.app.json.dumps)

    def _error(self, environ: dict[str, Any], start_response: Callable[..., Any],
               exc: Exception, started: float) -> Iterable[bytes]:
        """`exc`, being handled, answered as the Flask route's would be: the app's error
        handlers and after-request hooks (metrics, compression) in a request context. Flask
        re-raises an exception no handler takes with a bare `raise`: this runs inside the
        `except` that caught it."""
        app = self.app
        ctx = app.request_context(environ)
        ctx.push()
        error: BaseException | None = None
        try:
            g.started = started  # the metrics hook times the request from here
            try:
                response = app.finalize_request(app.handle_user_exception(exc))
            except Exception as unhandled:  # no handler, or a handler re-raised it: a 500
                error = unhandled
                response = app.handle_exception(unhandled)
            return response(environ, start_response)
        finally:
            ctx.pop(error)

