"""Percent-encoded bytes that are not UTF-8, in a request's path or query string; and a JSON
body in UTF-16 or UTF-32.

Werkzeug reads each bad byte of a path as U+FFFD (so `POST .../arms/%ff/pause` met an arm named
'\ufffd', a 404 naming it) and gives a query value's bad bytes back as `%XX` text (so
`unit_id=%ff` was the unit '%FF', the same as `unit_id=%25FF`). Both are read here from the
request's own bytes, so the refusal names the parameter instead. A JSON body is read as UTF-8
only: Flask's reader (json.detect_encoding) took UTF-16 and UTF-32 too, where abvoc's rule, and
its message for a byte that is not UTF-8, say UTF-8.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import unquote_to_bytes

_HINT = "is not valid UTF-8 (percent-encoded bytes that are not, such as %ff): send it as UTF-8"


def not_utf8(environ: dict[str, Any], view_args: dict[str, Any] | None) -> str | None:
    """What in the request is not UTF-8, said for the caller; None when all of it is."""
    return _path(environ, view_args) or _query(environ)


def body_not_utf8(data: bytes) -> str | None:
    """Why a JSON body, told by its first bytes, is no UTF-8 text (UTF-16 or UTF-32, with or
    without a byte order mark); None for UTF-8 (a UTF-8 byte order mark passes: RFC 8259 lets
    a parser ignore it). A byte that is not UTF-8 further on is the decoder's to name."""
    encoding = json.detect_encoding(data)
    if encoding.startswith("utf-8"):
        return None
    return f"the request body is {encoding.upper()} text, not UTF-8; send JSON in UTF-8"


def _path(environ: dict[str, Any], view_args: dict[str, Any] | None) -> str | None:
    """The bytes are PATH_INFO's, as latin-1 text (PEP 3333; granian gives only that), and where
    the server keeps the request line (RAW_URI or REQUEST_URI: werkzeug's server and test client,
    whose PATH_INFO holds U+FFFD already) its path's percent-encoded bytes. A real U+FFFD, sent
    as its UTF-8 bytes, passes."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    try:
        with contextlib.suppress(UnicodeEncodeError):  # not latin-1: a server decoded it
            environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        if raw:
            unquote_to_bytes(raw.partition("?")[0]).decode("utf-8")
    except UnicodeDecodeError:
        names = [n for n, v in (view_args or {}).items() if isinstance(v, str) and "\ufffd" in v]
        return f"path parameter '{names[0]}' {_HINT}" if names else f"the URL path {_HINT}"
    return None


def _query(environ: dict[str, Any]) -> str | None:
    """Each `name=value` of QUERY_STRING (latin-1 text of its bytes, as PATH_INFO), decoded as
    werkzeug splits and unquotes it, but strictly."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return None
    try:
        raw = query.encode("latin-1")
    except UnicodeEncodeError:  # a server decoded it: text already
        raw = query.encode("utf-8", "surrogateescape")
    for pair in raw.split(b"&"):
        name, _, value = (unquote_to_bytes(p.replace(b"+", b" ")) for p in pair.partition(b"="))
        try:
            shown = name.decode("utf-8")
        except UnicodeDecodeError:
            return f"a query parameter name {_HINT}"
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return f"query parameter '{shown[:100]}' {_HINT}"
    return None
