"""Compressed bodies both ways. Request bodies (`Content-Encoding: gzip` or `deflate`, as Triton's
HTTP client sends them when asked to compress) are inflated before the app sees them, so every
route and every input check reads the body as it was meant. Answers are compressed when the
client accepts it (`Accept-Encoding`: zstd, br, gzip or deflate), by Flask-Compress: the API's
JSON and V2 answers (JSON or binary tensors), the dashboard's pages, scripts and callbacks, the
metrics. Answers under 1 KiB (one prediction's, usually), where compressing costs more than it
saves, and streamed ones (files sent as they are read) go as they are.

Inflating is bounded both ways: at most `limit` compressed bytes are read and at most `limit`
bytes come out (a small body that inflates past it, a decompression bomb, is a 413 before more
is made). The app then checks the inflated body against each route's own, usually smaller,
limit. Other encodings are a 415 that says which ones abvoc reads.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from flask_compress import Compress
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

# zlib's window bits: a gzip wrapper, or the zlib wrapper that HTTP's "deflate" means.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# What the service answers that compresses (PNG images and PDF reports are compressed already).
COMPRESSED_TYPES = ["application/json", "application/octet-stream", "text/html", "text/css",
                    "text/plain", "text/javascript", "application/javascript",
                    "image/svg+xml", "application/manifest+json"]


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
    """Compress `app`'s answers for clients that accept it (the encoding they rank highest)."""
    app.config.update(COMPRESS_MIMETYPES=COMPRESSED_TYPES, COMPRESS_MIN_SIZE=1024,
                      COMPRESS_STREAMS=False)
    Compress(app)


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
