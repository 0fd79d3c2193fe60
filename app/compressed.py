"""Compressed bodies both ways. Request bodies (`Content-Encoding: gzip` or `deflate`, as Triton's
HTTP client sends them when asked to compress) are inflated before the app sees them, so every
route and every input check reads the body as it was meant. Answers are compressed for a client
that accepts it: the API's JSON and V2 answers (JSON or binary tensors), the dashboard's pages,
scripts and callbacks, the metrics. Answers under 1 KiB (one prediction's, usually), where
compressing costs more than it saves, and streamed ones (files sent as they are read) go as
they are.

Inflating is bounded both ways: at most `limit` compressed bytes are read and at most `limit`
bytes come out (a small body that inflates past it, a decompression bomb, is a 413 before more
is made). The app then checks the inflated body against each route's own, usually smaller,
limit. Other encodings are a 415 that says which ones abvoc reads.

Which encoding an answer gets is Werkzeug's reading of `Accept-Encoding` (RFC 9110: the highest
quality value wins, `q=0` refuses an encoding, `*` stands for any, an invalid value is ignored),
abvoc's order breaking ties: zstd (about as small as brotli here at a sixth of the time: Dash's
4.7 MB plotly bundle in 23 ms against 149), brotli, gzip, deflate. Flask-Compress, tried first,
gave gzip to a client that sent `gzip;q=0`.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

try:  # the standard library's from Python 3.14
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

import brotli
from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_accept_header
from werkzeug.wsgi import get_input_stream

# zlib's window bits: a gzip wrapper, or the zlib wrapper that HTTP's "deflate" means.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# What the service answers that compresses (PNG images and PDF reports are compressed already).
COMPRESSED_TYPES = frozenset({
    "application/json", "application/octet-stream", "text/html", "text/css", "text/plain",
    "text/javascript", "application/javascript", "image/svg+xml", "application/manifest+json"})
MIN_COMPRESSED_BYTES = 1024
# The encodings abvoc writes, in its order of preference when a client ranks them alike.
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": lambda data: zstd.compress(data, 3),
    "br": lambda data: brotli.compress(data, quality=4),
    "gzip": lambda data: zlib.compress(data, 6, wbits=_WBITS["gzip"]),
    "deflate": lambda data: zlib.compress(data, 6),
}


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """`data` inflated, or a BodyError saying why not."""
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"the body is not valid {encoding} data ({exc}); send it as "
                             "Content-Encoding says, or uncompressed") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyError(413, f"the body inflates past the limit of {limit} bytes; send less")
    if not inflater.eof:
        raise BodyError(400, f"the {encoding} body ends before its compressed stream does")
    if inflater.unused_data:
        raise BodyError(400, f"the body holds {len(inflater.unused_data)} bytes after its "
                             f"{encoding} stream; send one stream")
    return out


def compress_answers(app: Flask) -> None:
    """Compress `app`'s answers for the clients that accept it (see the module's docstring)."""
    app.after_request(_compressed)


def _compressed(response: Response) -> Response:
    if response.mimetype not in COMPRESSED_TYPES:
        return response
    response.vary.add("Accept-Encoding")  # whether or not this one is: caches must key on it
    if response.is_streamed or not 200 <= response.status_code < 300 \
            or "Content-Encoding" in response.headers:
        return response
    encoding = chosen_encoding(response.content_length or 0,
                               request.headers.get("Accept-Encoding"))
    if encoding is None:
        return response
    response.headers["Content-Encoding"] = encoding
    etag, weak = response.get_etag()
    if etag and not weak:  # another representation: another strong validator
        response.set_etag(f"{etag}-{encoding}")
        if request.method in ("GET", "HEAD"):
            response.make_conditional(request)
            if response.status_code == 304:  # the client holds it: nothing is sent
                return response
    response.set_data(ENCODERS[encoding](response.get_data()))
    return response


def chosen_encoding(length: int, accept_encoding: str | None) -> str | None:
    """The encoding a successful answer of `length` bytes (of a type in COMPRESSED_TYPES) goes
    in for a client that sent this Accept-Encoding; None: as it is."""
    if length < MIN_COMPRESSED_BYTES or not accept_encoding:
        return None
    return parse_accept_header(accept_encoding).best_match(ENCODERS)


class InflateBodies:
    """WSGI middleware: a compressed body becomes the plain body, with its Content-Length."""

    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding in ("", "identity"):
            return self.app(environ, start_response)
        try:
            if encoding not in _WBITS:
                raise BodyError(415, f"Content-Encoding {encoding[:40]!r} is not one abvoc "
                                     "reads: send the body uncompressed, or as gzip or deflate")
            try:
                data = get_input_stream(environ, max_content_length=self.limit).read()
            except RequestEntityTooLarge:
                raise BodyError(413, f"the compressed body is over the limit of {self.limit} "
                                     "bytes") from None
            body = inflate(data, encoding, self.limit)
        except BodyError as exc:
            answer = json.dumps({"error": exc.message, "status": exc.status}).encode()
            start_response(f"{exc.status} {_REASONS[exc.status]}", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
            return [answer]
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        for header in ("HTTP_CONTENT_ENCODING", "HTTP_TRANSFER_ENCODING"):
            environ.pop(header, None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)


_REASONS = {400: "Bad Request", 413: "Content Too Large", 415: "Unsupported Media Type"}
