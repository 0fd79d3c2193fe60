"""Hostile input stops at the door: every request's text, JSON and size is checked here, once,
before a view runs, so nothing the worker cannot handle reaches the store or the bus.

- Text (query arguments, path parameters, the headers the app reads, form fields, JSON keys and
  strings) must be UTF-8-encodable and free of NUL: a lone UTF-16 surrogate such as the valid
  JSON ``"\\ud800"`` cannot be stored in PostgreSQL nor written to the bus.
- JSON is parsed with bounds: nesting deeper than ``MAX_DEPTH`` is refused before the parser
  recurses, and numbers must be finite and at most 2^53 in size (beyond it they are not exact
  as floats, and no field needs them), except where a route says (the V2 infer route: tensor
  data up to FP64's range, each tensor then checked against its own datatype's range).
- A body over ``MAX_BODY_BYTES`` is refused from its Content-Length before it is read, and a
  body without one is cut off when it passes the limit (Werkzeug's ``MAX_CONTENT_LENGTH``).

Each refusal is a 400 (413 for size) whose message names the field. Per-field length limits
live with the fields (the views and the services that own them).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

import numpy as np
import orjson
from flask import Flask, has_request_context, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from app.not_utf8 import body_not_utf8, not_utf8
from app.read_headers import READ_HEADERS, header_problem
from core.errors import AbvocError
from core.output_types import MAX_NUMBER
from core.text import quoted_names, text_problem
from serving.bundles.binary import HEADER as BINARY_HEADER

# A 2 MiB image is 2.7 MiB as base64 in JSON; multipart carries it as it is.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_HEADER_CHARS = 1000


def environ_key(header: str) -> str:
    """Where a WSGI server puts a request header in the environ."""
    return "HTTP_" + header.upper().replace("-", "_")


_READ_HEADER_KEYS = tuple((name, environ_key(name)) for name in READ_HEADERS)
BINARY_KEY = environ_key(BINARY_HEADER)
V2_INFERENCE = ("v2.infer", "v2.versioned")
"""The /v2 inference routes, which read any body as V2 whatever its Content-Type: parsed here as
a form, a binary tensor body sent as multipart reached the view as 0 bytes."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class InputRefused(AbvocError):
    """A request part that must not go further; not a ValueError, so silent parsing keeps it."""


class BodyTooLarge(AbvocError):
    status = 413


def check_text(value: str, name: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise InputRefused(f"{name} {problem}")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in `text`, counted without parsing (no recursion)."""
    data = _STRING.sub(b'""', text.encode("utf-8", "surrogatepass"))
    brackets = data.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32) * 2 - 1
    return int(np.cumsum(steps, dtype=np.int32).max())


class _OutOfRange:
    """NaN or Infinity (not JSON, though Python's parser reads them); reported with its place
    by `_walk`."""

    def __init__(self, text: str) -> None:
        self.text = text


def _field(path: str) -> str:
    return f"'{path}'" if path else "the JSON body"


def number_bound() -> float:
    """The largest number this request's JSON may hold: MAX_NUMBER, unless its route set its
    own (`request.json_number_bound`: tensor data, which a model may take up to FP64's range)."""
    return getattr(request, "json_number_bound", MAX_NUMBER) if has_request_context() \
        else MAX_NUMBER


def _in_range(value: Any, bound: float) -> bool:
    """Whether a parsed value passes as it is: a number within the bounds, a boolean or null.
    Strings, objects, arrays and NaN or Infinity are for `_walk` to look into."""
    if value is None or isinstance(value, bool):
        return True
    return isinstance(value, int | float) and abs(value) <= bound  # inf: 1e999 overflowed


def _numbers_in_range(values: list, bound: float) -> bool:
    """True for an array of numbers all within the bounds, in C's time (a tensor's data); False
    when any item needs a closer look."""
    try:
        return max(map(abs, values), default=0) <= bound
    except TypeError:  # a string, null, object, array or NaN among them
        return False


def _numbers_within(value: Any, bound: float) -> int:
    """The number of keys in a parsed value's objects where every number in it is within the
    bounds, strings not looked at; -1 where one is not. The common body's check, a few times
    quicker than `_walk`, which says where a problem is."""
    stack, keys = [[value]], 0  # the value itself may be a number
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is list:
            if node and type(node[0]) in _NUMBERS and _numbers_in_range(node, bound):
                continue  # a tensor's data, checked in C
            items: Any = node
        elif kind is dict:
            items = node.values()
            keys += len(node)
        else:
            continue
        for item in items:
            kind = type(item)
            if kind in _NUMBERS:
                if not abs(item) <= bound:  # NaN too
                    return -1
            elif kind is list or kind is dict:
                stack.append(item)
            elif kind not in _PASSING:
                return -1  # a type only `_walk` knows what to say about
    return keys


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members as a dict, refused where a name is given twice: a parser keeps
    one of them (the last, here), and which one the sender meant cannot be told (as for a
    repeated query parameter or form field)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise InputRefused(f"the JSON body gives the field '{twice[:40]}' more than once in one "
                           "object; give each field once")
    return value


def _refuse_repeated_keys(text: str, keys: int) -> None:
    """Every key is followed by a colon, so a body whose objects hold as many keys as it has
    colons repeats none; one with more colons (a repeated key, or colons in its strings) is
    parsed again, keeping every member, to tell."""
    if keys >= 0 and text.count(":") == keys:
        return
    json.loads(text, parse_constant=_OutOfRange, object_pairs_hook=_unique_keys)


_NUMBERS = frozenset({int, float})
_PASSING = frozenset({str, bool, type(None)})


def _walk(value: Any, path: str, bound: float) -> None:
    if isinstance(value, str):
        check_text(value, _field(path))
    elif isinstance(value, dict):
        for key, item in value.items():
            if text_problem(key) is not None:
                raise InputRefused(f"a field name in {_field(path)} {text_problem(key)}")
            if not _in_range(item, bound):
                _walk(item, f"{path}.{key}" if path else key, bound)
    elif isinstance(value, list):
        if not _numbers_in_range(value, bound):
            for i, item in enumerate(value):
                if not _in_range(item, bound):
                    _walk(item, f"{path}[{i}]", bound)
    elif not _in_range(value, bound):
        if isinstance(value, _OutOfRange):
            text = value.text
        elif isinstance(value, float) and not math.isfinite(value):
            text = f"{'-' if value < 0 else ''}1e309 or past it"  # parsed as infinity
        else:
            text = repr(value)
        text = text if len(text) <= 24 else text[:20] + "..."
        limit = f"2^53 ({MAX_NUMBER})" if bound == MAX_NUMBER else f"{bound:.6g}"
        raise InputRefused(f"{_field(path)} holds the number {text}, which is out of range: "
                           f"numbers must be finite and at most {limit} in size")


def parse_json(data: str | bytes, bound: float | None = None) -> Any:
    """JSON with bounded depth and numbers and storable text; InputRefused says what is wrong.
    Malformed JSON raises ValueError, as `json.loads` does.

    Numbers are parsed in C and checked afterwards, a whole array at a time: parse hooks would
    call Python for every number (a 12,288-value tensor took 6 ms to check that way, three
    times its parse). orjson parses first, a few times quicker than the standard library on a
    tensor; what it refuses (a lone surrogate, NaN) or the checks refuse is parsed again by the
    standard library, whose reading the messages quote (an integer past 64 bits exactly, not
    as orjson's float). `bound`: the largest number allowed, this request's by default
    (:func:`number_bound`)."""
    if not isinstance(data, str) and (problem := body_not_utf8(data)) is not None:
        raise InputRefused(problem)
    text = data if isinstance(data, str) else data.decode(json.detect_encoding(data),
                                                          "surrogatepass")
    # Brackets counted, strings and all, bound the depth from above: most bodies need no more.
    few = text.count("[") + text.count("{") <= MAX_DEPTH
    depth = 0 if few else json_depth(text)
    if depth > MAX_DEPTH:
        raise InputRefused(f"the JSON body nests {depth} levels deep; the limit is {MAX_DEPTH}")
    bound = number_bound() if bound is None else bound
    try:
        value = orjson.loads(text)
        # orjson refuses lone surrogates, and a NUL in a string is written \u0000: without one,
        # every string passes and only the numbers are left to check.
        keys = -1 if "\\u0000" in text else _numbers_within(value, bound)
        if keys < 0:
            _walk(value, "", bound)
        _refuse_repeated_keys(text, keys)
        return value
    except (orjson.JSONDecodeError, InputRefused):
        pass  # said again, and precisely, below
    try:
        value = json.loads(text, parse_constant=_OutOfRange, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # past Python's 4,300 digits
            raise InputRefused("the JSON body holds a number of thousands of digits, which is "
                               "out of range") from None
        raise
    _walk(value, "", bound)
    return value


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing request bodies with :func:`parse_json` and writing compact answers
    with orjson: on the predict path `jsonify` took 49 µs a response with the standard encoder
    (sorted keys), 33 with orjson. What orjson does not write as Flask would (dates,
    dataclasses, integers beyond 64 bits, lone surrogates) goes to Flask's own encoder; NaN and
    infinities come out as null, as valid JSON has no other word for them."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.keys() <= {"separators"} and kwargs.get("separators", _COMPACT) == _COMPACT:
            try:
                return orjson.dumps(obj, default=self.default, option=_ORJSON).decode()
            except (orjson.JSONEncodeError, TypeError):
                pass  # Flask's encoder says it the same way, or raises as it always did
        # Flask's encoder would write NaN and Infinity, which no JSON parser need accept.
        return super().dumps(_finite(obj), **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse_json(s)


def _finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float (numpy's too) as None, in lists, tuples and
    dictionaries at any depth; the rest as it is."""
    if isinstance(obj, float | np.floating):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


_COMPACT = (",", ":")
_ORJSON = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


def refuse_hostile_input() -> None:
    """Runs before every view: size first (unread), then every text part of the request."""
    req = request._get_current_object()  # noqa: SLF001 - one proxy lookup, not one per use
    length, (limit, note) = req.content_length, _limit()
    if length is not None and length > limit:
        raise BodyTooLarge(f"the request body is {length} bytes; the limit is {limit}{note}")
    if problem := not_utf8(req.environ, req.view_args):  # path and query, from their bytes
        raise InputRefused(problem)
    for name, value in (req.view_args or {}).items():
        if isinstance(value, str):
            check_text(value, f"path parameter '{name}'")
    if req.query_string:
        for name, value in req.args.items(multi=True):
            check_text(name, "a query parameter name")
            check_text(value, f"query parameter '{name}'")
    environ = req.environ
    check_read_headers(environ, routed=req.routing_exception is None)
    if req.is_json and BINARY_KEY not in environ:  # binary: the view splits it
        data = req.get_data(cache=True)
        _refuse_cut_off_body()
        # parse_json refuses what must not pass; a body that is not JSON at all is said so here,
        # where the parser's words are at hand (an empty body stays for the views that allow it).
        if req.get_json(silent=True) is None and data.strip():
            read_json(data)
    elif req.mimetype == "multipart/form-data" and req.endpoint not in V2_INFERENCE:
        form = req.form
        _refuse_cut_off_body()
        for name, value in form.items(multi=True):
            if name is None:  # a part without a name: no view reads it
                continue
            check_text(name, "a form field name")
            if "\ufffd" in value:  # what the form parser puts for bytes that are not UTF-8
                raise InputRefused(f"form field '{name}' is not valid UTF-8 (it holds U+FFFD, "
                                   "which stands in for bytes that are not): send it as UTF-8")
            check_text(value, f"form field '{name}'")
        # A field given twice: the view reads one, and which one was meant cannot be told (as
        # for a repeated query parameter).
        names = Counter(n for part in (form, req.files) for n, _ in part.items(multi=True) if n)
        if repeated := sorted(n for n, times in names.items() if times > 1):
            raise InputRefused(f"form field(s) {quoted_names(repeated)} given more than once; "
                               "give each once")


def check_read_headers(environ: dict[str, Any], routed: bool = True) -> None:
    """The headers the app reads (`READ_HEADERS`; others are the server's business, never
    stored) hold storable text of a bounded length, and non-empty ASCII where a view reads
    them (`routed`: an unknown path or method is its 404 or 405 whatever the headers)."""
    for name, key in _READ_HEADER_KEYS:
        value = environ.get(key)
        if value is not None:
            if routed and (problem := header_problem(name, value)) is not None:
                raise InputRefused(problem)
            check_text(value, f"header '{name}'")
            if len(value) > MAX_HEADER_CHARS:
                raise InputRefused(f"header '{name}' is longer than {MAX_HEADER_CHARS} characters")


def optional_json() -> Any:
    """The JSON body of a route whose body may be left out: {} when none was sent. A body that
    was sent but is not JSON (a form, or JSON sent as a form, as curl's -d does without a
    Content-Type) is None, for the route's object check to refuse: read as no body, a claim's
    `queue` was dropped and an item of another queue leased."""
    if not request.content_length and not request.get_data(cache=True):
        return {}
    return request.get_json(silent=True)


def read_json(data: bytes) -> Any:
    """:func:`parse_json`, with a body that does not decode or parse refused saying where."""
    try:
        return parse_json(data)
    except UnicodeDecodeError as exc:
        raise InputRefused(f"the request body is not valid {exc.encoding.upper()} text (byte "
                           f"0x{exc.object[exc.start]:02x} at offset {exc.start}); send JSON "
                           "in UTF-8") from None
    except ValueError as exc:
        raise InputRefused(f"the request body is not valid JSON: {exc}") from None


def _refuse_cut_off_body() -> None:
    """A body without a Content-Length is read up to the limit and no further; one that
    reached it is refused rather than parsed cut off."""
    stream = request.stream
    if request.content_length is None and isinstance(stream, LimitedStream) \
            and stream.is_exhausted:
        limit, note = _limit()
        raise BodyTooLarge(f"the request body reached the limit of {limit} bytes{note}")


# The routes that take an image, whose own limit (2 MiB) a body-size refusal also says.
IMAGE_ROUTES = ("/v1/predict", "/v1/pages")


def _limit() -> tuple[int, str]:
    """This request's body limit (a route may set its own) and, on a route taking an image,
    what it means for images."""
    limit = request.max_content_length or MAX_BODY_BYTES
    images = limit == MAX_BODY_BYTES and request.path in IMAGE_ROUTES
    return limit, " (images at most 2 MiB)" if images else ""


def _too_large(exc: RequestEntityTooLarge) -> tuple[dict[str, Any], int]:
    limit, note = _limit()
    note = " (images at most 2 MiB, form fields 500 kB)" if note else ""
    return BodyTooLarge(f"the request body is over the limit of {limit} bytes{note}").to_dict(), \
        413


def init_app(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(refuse_hostile_input)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
