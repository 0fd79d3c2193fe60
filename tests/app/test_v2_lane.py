"""The V2 lane (app/api/v2_lane.py) serves well-formed inference requests around Flask: each
request here is sent twice, through the lane and with it turned off (every request through the
Flask route), and the two answers must be the same (status, headers, body but for the ids and
times each prediction has of its own), with one prediction stored per answered request. Flask's
`request_started` signal tells which way a request went: the lane takes the successes and the
errors of serving; Flask alone takes what its hooks check (a query string, binary tensors, a
body that is not JSON, refused text in a header, a key without the scope)."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
from flask import Flask, request_started
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app import compressed
from app.api.v2 import INFER_RULE
from app.api.v2_lane import CONFIG_KEY
from app.rate_limit import KeyRateLimit
from core.store.models import ServedPrediction
from serving.bundles.binary import HEADER as BINARY_HEADER
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import flowers, upload

ROW = flowers(1)[0].tolist()
URL = "/v2/models/default/infer"
# What each prediction has of its own: not compared.
_OWN = ("prediction_id", "receipt", "latency_ms")


def _body(**changes: Any) -> dict[str, Any]:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": ROW}],
            "parameters": {"unit_id": "u1"}}
    body.update(changes)
    return body


def _seen(response: TestResponse) -> tuple[int, dict[str, str], Any]:
    """The answer without what each prediction has of its own."""
    headers = {k: v for k, v in response.headers.items()
               if k not in ("Content-Length", BINARY_HEADER)}
    data = response.get_data()
    if response.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    rest = b""
    if BINARY_HEADER in response.headers:
        length = int(response.headers[BINARY_HEADER])
        data, rest = data[:length], data[length:]
    body = json.loads(data)
    for key in _OWN:
        body.get("parameters", {}).pop(key, None)
        body.pop(key, None)
    for key in ("details",):  # a failure's prediction id and receipt
        body.pop(key, None)
    return response.status_code, headers, (body, rest)


def _stored(app: Flask) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(ServedPrediction)) or 0


@pytest.fixture
def lane(v2app: Flask) -> tuple[Flask, FlaskClient, dict[str, dict[str, str]]]:
    client = v2app.test_client()
    keys = {scope: bearer(v2app, scope) for scope in ("admin", "predict", "correct")}
    upload(client, keys["admin"], EXAMPLE)
    return v2app, client, keys


def _both(app: Flask, client: FlaskClient, **request: Any
          ) -> tuple[TestResponse, TestResponse, int]:
    """The request through the lane, then through Flask; how many of the two Flask saw."""
    seen: list[object] = []

    def started(sender: object, **_: object) -> None:
        seen.append(sender)

    request_started.connect(started, app)
    try:
        app.config[CONFIG_KEY] = True
        through_lane = client.post(**_fresh(request))
        app.config[CONFIG_KEY] = False
        through_flask = client.post(**_fresh(request))
    finally:
        app.config[CONFIG_KEY] = True
        request_started.disconnect(started, app)
    return through_lane, through_flask, len(seen)


def _fresh(request: dict[str, Any]) -> dict[str, Any]:
    """The request's arguments, a body stream made anew for each send."""
    return {k: v() if callable(v) else v for k, v in request.items()}


def test_lane_answers_as_the_flask_route(lane: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    app, client, keys = lane
    served = [
        dict(path=URL, headers=keys["predict"], json=_body()),
        dict(path=URL, headers=keys["admin"], json=_body(id="r-1")),
        dict(path=URL, headers={**keys["predict"], "X-Abvoc-Unit-Id": "u2"},
             json={"inputs": _body()["inputs"], "outputs": [{"name": "output"}]}),
        dict(path=URL, headers=keys["predict"],
             json=_body(parameters={"unit_id": "u3", "binary_data_output": True})),
        dict(path=URL, headers={**keys["predict"], "Accept-Encoding": "gzip"}, json=_body()),
    ]
    monkeypatch.setattr(compressed, "MIN_COMPRESSED_BYTES", 64)  # iris answers are small
    for request in served:
        lane_answer, flask_answer, flask_saw = _both(app, client, **request)
        assert lane_answer.status_code == 200, lane_answer.get_data()
        assert _seen(lane_answer) == _seen(flask_answer)
        assert flask_saw == 1, "the lane took it, Flask the second time"
    assert client.post(**served[-1]).headers["Content-Encoding"] == "gzip"
    assert _stored(app) == 2 * len(served) + 1


def test_lane_errors_are_the_flask_routes(lane: tuple) -> None:
    app, client, keys = lane
    # Refused once serving began: the app's error handlers answer, the same way.
    refused = [
        (dict(path=URL, headers=keys["predict"], json=_body(x=1)), 400),
        (dict(path=URL, headers={**keys["predict"], "X-Abvoc-Force-Arm": "b"}, json=_body()),
         403),
        (dict(path=f"/v2/models/{'s' * 101}/infer", headers=keys["predict"], json=_body()),
         400),
        (dict(path=URL, headers=keys["predict"], json=_body(parameters={})), 400),
        (dict(path=URL, headers=keys["admin"], json=_body(
            inputs=[{"name": "features", "datatype": "FP32", "shape": [1, 3],
                     "data": ROW[:3]}])), 400),
    ]
    # Left to Flask before anything happens: its hooks and `require` answer.
    declined = [
        # Flask refuses a query parameter the document does not give the route (none here).
        (dict(path=f"{URL}?x=1", headers=keys["predict"], json=_body()), 400),
        (dict(path=URL, headers=keys["predict"], data="not json",
              content_type="application/json"), 400),
        (dict(path=URL, headers={**keys["predict"], "X-Abvoc-Unit-Id": "a\x00b"},
              json=_body(parameters=None)), 400),
        (dict(path=URL, headers=keys["correct"], json=_body()), 403),
        (dict(path=URL, json=_body()), 401),
        # A chunked body (no length: Flask reads it up to its limit), as a server marks it.
        (dict(path=URL, headers={**keys["predict"], "Transfer-Encoding": "chunked"},
              content_type="application/json", environ_overrides={"wsgi.input_terminated": True},
              input_stream=lambda: io.BytesIO(json.dumps(_body()).encode())), 200),
        (dict(path=URL, headers=keys["predict"], data=b'{"inputs":' + b"[" * 40 + b"]" * 40 + b"}",
              content_type="application/json"), 400),
    ]
    for cases, flask_sees in ((refused, 1), (declined, 2)):
        for request, status in cases:
            lane_answer, flask_answer, flask_saw = _both(app, client, **request)
            assert lane_answer.status_code == status, (request, lane_answer.get_data())
            assert _seen(lane_answer) == _seen(flask_answer), request
            assert flask_saw == flask_sees, request
    # The chunked body's two answers; no refusal stored anything.
    assert _stored(app) == 2


def test_lane_counts_and_limits_as_flask_does(lane: tuple) -> None:
    app, client, keys = lane
    metrics = app.extensions["abvoc_metrics"]

    def answered(status: str) -> float:
        value = metrics.registry.get_sample_value(
            "abvoc_http_requests_total",
            {"endpoint": INFER_RULE, "method": "POST", "status": status})
        return value or 0.0

    for _ in range(3):
        assert client.post(URL, headers=keys["predict"], json=_body()).status_code == 200
    assert answered("200") == 3
    assert metrics.registry.get_sample_value(
        "abvoc_http_request_duration_seconds_count", {"endpoint": INFER_RULE}) == 3
    app.extensions["abvoc_rate"] = KeyRateLimit(0.001)  # one request, then none for a while
    limited = [client.post(URL, headers=keys["predict"], json=_body()) for _ in range(2)]
    assert [r.status_code for r in limited] == [200, 429]
    assert "Retry-After" in limited[1].headers and "requests a" in limited[1].get_json()["error"]
    assert answered("429") == 1 and answered("200") == 4
    assert _stored(app) == 4
