"""Property tests: hostile input on every route gets a 4xx at worst, never a 5xx, and a refused
request stores nothing; what is accepted is text the worker can store.

Hostile means: arbitrary Unicode including lone surrogates and NUL (in JSON fields, field names,
query arguments, path segments and the headers the app reads), JSON nested thousands deep,
numbers of hundreds of digits, NaN and infinities, and bytes that are no JSON at all. The runs
are derandomized, so CI sees the same cases each time; ABVOC_HOSTILE_SEED makes a random hunt
of that seed instead, and ABVOC_HOSTILE_EXAMPLES a longer one.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.store.models import Experiment, OutboxEvent
from serving.images import encode_png
from tests.app.test_experiments_api import ARMS, create
from tests.app.test_input_limits import stored
from tests.app.test_predict_flow import predict
from tests.support.bundles import EXAMPLE
from tests.support.v2 import upload

EXAMPLES = int(os.environ.get("ABVOC_HOSTILE_EXAMPLES", "60"))
SEED = os.environ.get("ABVOC_HOSTILE_SEED")
HOSTILE = ["\ud800", "ok\udfff", "a\x00b", "x" * 3000, "\U0010ffff\u200b"]
TEXT = st.sampled_from(HOSTILE) | st.text(st.characters(exclude_categories=()), max_size=12)
HEADER_TEXT = st.text(st.characters(exclude_categories=(), exclude_characters="\r\n"),
                      max_size=12) | st.sampled_from(["\ud800", "k\x00", "k" * 2000])
NUMBERS = st.one_of(st.integers(), st.integers(min_value=10**17, max_value=10**400),
                    st.floats(allow_nan=True, allow_infinity=True))
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8)
IMAGE = base64.b64encode(encode_png(np.full((16, 16), 255, "uint8"))).decode()


def _encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, arrays: bool) -> str:
    return "[" * depth + "]" * depth if arrays else '{"a": ' * depth + "1" + "}" * depth


@st.composite
def bodies(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A valid body with one field made hostile, or a hostile body altogether."""
    kind = draw(st.sampled_from(["field", "field", "field", "deep", "whole", "bytes"]))
    field = draw(st.sampled_from(sorted(base)))
    if kind == "field":
        return _encode({**base, field: draw(TEXT | VALUES)}, draw(st.booleans()))
    if kind == "deep":
        nested = _nested(draw(st.integers(33, 5000)), draw(st.booleans()))
        if draw(st.booleans()):
            return nested.encode()
        others = _encode({k: v for k, v in base.items() if k != field}, True)[1:]
        return f'{{"{field}": {nested}, '.encode() + others if others != b"}" else \
            f'{{"{field}": {nested}}}'.encode()
    if kind == "whole":
        return _encode(draw(VALUES), draw(st.booleans()))
    return draw(st.binary(max_size=40))


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def snapshot(app: Flask) -> tuple[dict[str, int], list[Any]]:
    with app.extensions["abvoc"].db.session() as s:
        experiments = [(e.name, e.status, e.arms, e.canary, e.guardrails, e.status_reason)
                       for e in s.scalars(select(Experiment).order_by(Experiment.id))]
    return stored(app), experiments


def check(app: Flask, send: Callable[[], Any]) -> None:
    """Send once: no 5xx; on a 4xx nothing changed; on success everything stored is storable."""
    before = snapshot(app)
    response = send()
    assert response.status_code < 500, response.get_data()[:500]
    if response.status_code >= 400:
        assert response.is_json and response.get_json()["error"]
        assert snapshot(app) == before, response.get_json()
        return
    with app.extensions["abvoc"].db.session() as s:
        for payload in s.scalars(select(OutboxEvent.payload)):
            assert _storable(json.loads(payload))
    assert _storable(before[1]) and _storable(snapshot(app)[1])


def _run(test: Callable[..., None], examples: int = EXAMPLES) -> None:
    if SEED is not None:
        test = seed(int(SEED))(test)
    settings(max_examples=examples, derandomize=SEED is None, deadline=None, database=None,
             suppress_health_check=list(HealthCheck))(test)()


def test_predict_takes_no_hostile_input(app: Flask, client: FlaskClient, admin: dict) -> None:
    base = {"image_base64": IMAGE, "unit_id": "u1"}

    @given(body=bodies(base), force=st.none() | HEADER_TEXT)
    @example(body=_encode({**base, "unit_id": "\ud800"}, True), force=None)
    @example(body=_nested(600, True).encode(), force=None)
    @example(body=b'{"unit_id": "u", "image_base64": ' + _nested(900, False).encode() + b"}",
             force="\x00")
    def hostile(body: bytes, force: str | None) -> None:
        headers = {**admin, **({"X-Abvoc-Force-Arm": force} if force is not None else {})}
        check(app, lambda: client.post("/v1/predict", data=body, headers=headers,
                                       content_type="application/json"))

    @given(unit=TEXT, slice_=TEXT)
    def multipart(unit: str, slice_: str) -> None:
        form = {"image": (__import__("io").BytesIO(base64.b64decode(IMAGE)), "i.png"),
                "unit_id": unit.encode("utf-8", "surrogatepass"),
                "slice": slice_.encode("utf-8", "surrogatepass")}
        check(app, lambda: client.post("/v1/predict", data=form, headers=admin,
                                       content_type="multipart/form-data"))

    _run(hostile)
    _run(multipart, max(10, EXAMPLES // 6))


def test_v2_inference_takes_no_hostile_input(app: Flask, client: FlaskClient,
                                             admin: dict) -> None:
    upload(client, admin, EXAMPLE)
    # Scope "default" has no experiment: the newest candidate, the uploaded bundle, serves it.
    tensor = {"name": "features", "datatype": "FP32", "shape": [1, 4],
              "data": [5.1, 3.5, 1.4, 0.2]}
    base = {"inputs": [tensor], "parameters": {"unit_id": "u1"}, "id": "r1"}

    def nested(where: str, value: Any) -> bytes:
        body = json.loads(json.dumps(base))
        if where == "tensor":
            body["inputs"][0] = {**tensor, "name": value}
        elif where == "bytes":
            body["inputs"][0] = {**tensor, "datatype": "BYTES", "shape": [1], "data": [value]}
        else:
            body["parameters"][where] = value
        return _encode(body, False)

    @given(body=bodies(base) | st.builds(nested, st.sampled_from(
               ["unit_id", "slice", "binary_data_output", "tensor", "bytes"]), TEXT | VALUES),
           unit=st.none() | HEADER_TEXT, binary=st.none() | HEADER_TEXT)
    @example(body=nested("unit_id", "\ud800"), unit=None, binary=None)
    @example(body=nested("slice", "a\x00b"), unit=None, binary=None)
    @example(body=_encode({"inputs": [tensor]}, True), unit="k\x00", binary=None)
    @example(body=_encode(base, True), unit=None, binary="12\x00")
    @example(body=_encode(base, True), unit=None, binary="-3")
    def hostile(body: bytes, unit: str | None, binary: str | None) -> None:
        headers = {**admin, **({"X-Abvoc-Unit-Id": unit} if unit is not None else {}),
                   **({"Inference-Header-Content-Length": binary} if binary is not None
                      else {})}
        check(app, lambda: client.post("/v2/models/default/infer", data=body, headers=headers,
                                       content_type="application/json"))

    _run(hostile)


def test_v2_binary_bodies_take_no_hostile_input(app: Flask, client: FlaskClient,
                                                admin: dict) -> None:
    """The binary tensor data extension: a JSON header that lies about its length or its
    tensors' sizes, datatypes and shapes, with any bytes after it."""
    upload(client, admin, EXAMPLE)
    datatypes = st.sampled_from(["FP32", "FP64", "INT64", "UINT8", "BOOL", "BYTES", "FP16", "x"])

    @given(datatype=datatypes, shape=st.lists(st.integers(-2, 6), max_size=3),
           size=st.integers(-4, 64), data=st.binary(max_size=64),
           lie=st.integers(-8, 8), extra=st.one_of(st.none(), VALUES))
    @example(datatype="FP32", shape=[1, 4], size=16, data=bytes(16), lie=0, extra=None)
    @example(datatype="BYTES", shape=[1], size=8, data=b"\xff\xff\xff\x7fabcd", lie=0,
             extra=None)
    def hostile(datatype: str, shape: list[int], size: int, data: bytes, lie: int,
                extra: Any) -> None:
        tensor: dict[str, Any] = {"name": "features", "datatype": datatype, "shape": shape,
                                  "parameters": {"binary_data_size": size}}
        if extra is not None:
            tensor["parameters"]["extra"] = extra
        head = _encode({"inputs": [tensor], "parameters": {"unit_id": "u"}}, True)
        headers = {**admin, "Inference-Header-Content-Length": str(len(head) + lie)}
        check(app, lambda: client.post("/v2/models/default/infer", data=head + data,
                                       headers=headers, content_type="application/octet-stream"))

    _run(hostile)


def test_corrections_take_no_hostile_input(app: Flask, client: FlaskClient, predictor: dict,
                                           corrector: dict) -> None:
    served = predict(client, predictor).get_json()
    base = {"prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": "x^{2}", "comment": "ok", "rating": 3}

    @given(body=bodies(base), key=st.none() | HEADER_TEXT)
    @example(body=_encode({**base, "comment": "\ud800"}, False), key=None)
    @example(body=_encode({**base, "receipt": "\u00e9" * 64}, False), key=None)
    @example(body=_encode(base, True), key="\ud800")
    def hostile(body: bytes, key: str | None) -> None:
        headers = {**corrector, **({"Idempotency-Key": key} if key is not None else {})}
        check(app, lambda: client.post("/v1/corrections", data=body, headers=headers,
                                       content_type="application/json"))

    _run(hostile)


def test_experiments_take_no_hostile_input(app: Flask, client: FlaskClient,
                                           admin: dict) -> None:
    exp = create(client, admin, name="target")
    base = {"name": "n", "scope": "s", "arms": ARMS, "shadows": [{"candidate": ARMS[2][
        "candidate"]}], "canary": {"treatment": "mixed", "steps": [0.1, 0.2]},
            "guardrails": {"p99_latency_ms": 100, "min_samples": 5}}
    arm_base = [dict(ARMS[1], weight=0.5), ARMS[0]]
    paths = [f"/v1/experiments/{exp['id']}/{a}" for a in
             ("start", "pause", "resume", "kill", "stop", "advance")]

    @given(body=bodies(base) | bodies({"name": "m", "arms": arm_base}))
    @example(body=_encode({**base, "arms": [dict(ARMS[0], weight=10**300), ARMS[1]]}, True))
    @example(body=_encode({**base, "guardrails": {"error_rate": 10**300}}, True))
    @example(body=_encode({**base, "arms": [dict(ARMS[0], weight=1.7e308),
                                            dict(ARMS[1], weight=1.7e308)]}, True))
    def creating(body: bytes) -> None:
        check(app, lambda: client.post("/v1/experiments", data=body, headers=admin,
                                       content_type="application/json"))

    @given(path=st.sampled_from(paths), body=bodies({"reason": "why"}), arm=TEXT,
           on_arm=st.booleans())
    def acting(path: str, body: bytes, arm: str, on_arm: bool) -> None:
        if on_arm:
            path = f"/v1/experiments/{exp['id']}/arms/" \
                   f"{quote(arm.encode('utf-8', 'surrogatepass'), safe='')}/pause"
        check(app, lambda: client.post(path, data=body, headers=admin,
                                       content_type="application/json"))

    _run(creating)
    _run(acting)


def test_reads_take_no_hostile_input(app: Flask, client: FlaskClient, admin: dict) -> None:
    exp = create(client, admin, name="read")
    paths = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/candidates",
             "/v1/experiments", f"/v1/experiments/{exp['id']}",
             f"/v1/experiments/{exp['id']}/results", f"/v1/experiments/{exp['id']}/divergence"]
    names = st.sampled_from(["status", "alpha", "tolerance"]) | TEXT

    @given(path=st.sampled_from(paths), query=st.dictionaries(names, TEXT, max_size=3),
           segment=st.none() | TEXT, body=st.none() | bodies({"a": 1}))
    @example(path="/healthz", query={}, segment=None, body=_nested(700, True).encode())
    @example(path=paths[-1], query={"alpha": "1e-400"}, segment=None, body=None)
    def reading(path: str, query: dict[str, str], segment: str | None,
                body: bytes | None) -> None:
        if segment is not None:
            path = f"/v1/experiments/{quote(segment.encode('utf-8', 'surrogatepass'), safe='')}"
        query_string = "&".join(
            f"{quote(k.encode('utf-8', 'surrogatepass'))}="
            f"{quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in query.items())
        check(app, lambda: client.get(path, query_string=query_string, headers=admin,
                                      data=body, content_type="application/json"))

    _run(reading)


def test_the_other_routes_take_no_hostile_input(app: Flask, client: FlaskClient,
                                                admin: dict) -> None:
    """Outcome metrics and outcomes, the relabeling rules and claims, and every path segment a
    route takes as text (arm, candidate, scope, week)."""
    exp = create(client, admin, name="others")
    served = predict(client, admin).get_json()
    metric = {"name": "won", "kind": "proportion", "direction": "higher"}
    assert client.post(f"/v1/experiments/{exp['id']}/metrics", headers=admin,
                       json=metric).status_code == 201
    writes = {
        f"/v1/experiments/{exp['id']}/metrics": ("post", {**metric, "name": "score"}),
        "/v1/outcomes": ("post", {"prediction_id": served["prediction_id"],
                                  "receipt": served["receipt"], "metric": "won", "value": 1}),
        "/v1/relabel/rules": ("put", {"audit_rate": 0.5}),
        "/v1/relabel/claim": ("post", {"lease_s": 60}),
    }
    segments = {
        "arm": ("post", f"/v1/experiments/{exp['id']}/arms/{{}}/pause"),
        "candidate": ("post", "/v1/candidates/{}/retire"),
        "scope": ("get", "/v2/models/{}"), "scope ready": ("get", "/v2/models/{}/ready"),
        "scope infer": ("post", "/v2/models/{}/infer"), "week": ("get", "/v1/reports/{}.html"),
    }

    @given(route=st.sampled_from(sorted(writes)), body=st.data())
    @example(route="/v1/outcomes", body=None)
    def writing(route: str, body: Any) -> None:
        method, base = writes[route]
        sent = body.draw(bodies(base)) if body is not None else _encode(
            {**base, "metric": "w\ud800"}, False)
        check(app, lambda: getattr(client, method)(route, data=sent, headers=admin,
                                                   content_type="application/json"))

    @given(where=st.sampled_from(sorted(segments)), segment=TEXT)
    @example(where="arm", segment="\ud800")
    @example(where="scope infer", segment="a\x00b")
    def addressing(where: str, segment: str) -> None:
        method, template = segments[where]
        path = template.format(quote(segment.encode("utf-8", "surrogatepass"), safe=""))
        check(app, lambda: getattr(client, method)(path, headers=admin, json={}))

    _run(writing)
    _run(addressing)
