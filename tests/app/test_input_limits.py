"""One test per input defect the hardening review found: text the worker cannot store, deep JSON,
huge numbers, oversized bodies, odd receipts, unknown arms, and an experiment that broke results."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.inputs import MAX_BODY_BYTES, MAX_DEPTH, InputRefused, parse_json
from core import receipts
from core.errors import AbvocError
from core.store.models import CorrectionRequest, Experiment, OutboxEvent, ServedPrediction
from serving.experiments import Experiments
from serving.images import encode_png
from tests.app.test_experiments_api import ARMS, create
from tests.app.test_predict_flow import _image, predict

TABLES = (OutboxEvent, ServedPrediction, CorrectionRequest, Experiment)


def stored(app: Flask) -> dict[str, int]:
    """Rows in every table a request may write to."""
    with app.extensions["abvoc"].db.session() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}


def post_raw(client: FlaskClient, path: str, text: str, headers: dict):  # noqa: ANN201
    return client.post(path, data=text.encode("utf-8", "surrogatepass"), headers=headers,
                       content_type="application/json")


def test_lone_surrogates_are_refused_naming_the_field(app: Flask, client: FlaskClient,
                                                      predictor: dict, corrector: dict) -> None:
    served = predict(client, predictor).get_json()
    before = stored(app)
    body = {"prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": "x", "comment": "\ud800"}
    refused = client.post("/v1/corrections", json=body, headers=corrector)
    assert refused.status_code == 400 and "'comment'" in refused.get_json()["error"]
    # The same surrogate sent as raw UTF-8-like bytes (CESU), not as a JSON escape.
    raw = post_raw(client, "/v1/corrections", json.dumps(body, ensure_ascii=False), corrector)
    assert raw.status_code == 400 and "'comment'" in raw.get_json()["error"]
    unit = predict(client, predictor, unit="user-\udfff")
    assert unit.status_code == 400 and "'unit_id'" in unit.get_json()["error"]
    key = client.post("/v1/corrections", json={**body, "comment": "ok"},
                      headers={**corrector, "Idempotency-Key": "k\x00"})
    assert key.status_code == 400 and "Idempotency-Key" in key.get_json()["error"]
    assert stored(app) == before


def test_deep_json_is_a_400_on_every_json_route(client: FlaskClient, admin: dict) -> None:
    deep = "[" * 600 + "]" * 600
    for path in ("/healthz", "/v1/predict", "/v1/corrections", "/v1/experiments",
                 "/v1/experiments/1/start"):
        response = post_raw(client, path, deep, admin) if path != "/healthz" else \
            client.get(path, data=deep, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert "nests 600 levels" in response.get_json()["error"]


def test_bodies_that_are_not_json_are_400s_that_say_where(app: Flask, client: FlaskClient,
                                                          admin: dict) -> None:
    before = stored(app)
    for path in ("/v1/predict", "/v1/corrections", "/v1/experiments",
                 "/v2/models/default/infer"):
        comma = post_raw(client, path, '{"a": 1,}', admin)
        assert comma.status_code == 400, (path, comma.status_code)
        assert comma.get_json()["error"] == ("the request body is not valid JSON: Expecting "
                                             "property name enclosed in double quotes: line 1 "
                                             "column 9 (char 8)")
        latin = client.post(path, data=b'{"name": "caf\xe9"}', headers=admin,
                            content_type="application/json")
        assert latin.status_code == 400
        assert latin.get_json()["error"] == ("the request body is not valid UTF-8 text (byte "
                                             "0xe9 at offset 13); send JSON in UTF-8")
        # UTF-16 and UTF-32 are JSON's other encodings, which Flask's reader took: not UTF-8.
        for encoding in ("utf-16", "utf-16-le", "utf-32-be"):  # utf-16: with its BOM
            wide = client.post(path, data='{"name": "café"}'.encode(encoding), headers=admin,
                               content_type="application/json")
            assert wide.status_code == 400, (path, encoding)
            assert wide.get_json()["error"] == (f"the request body is {encoding.upper()} text, "
                                                "not UTF-8; send JSON in UTF-8"), wide.get_json()
    # An empty body is still each view's to judge (starting an experiment needs none).
    assert client.post("/v1/experiments", data=b"", headers=admin,
                       content_type="application/json").status_code == 400
    assert stored(app) == before


def test_the_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    def nested(levels: int, inner: str = "1") -> str:
        return "[" * levels + inner + "]" * levels

    assert parse_json(nested(MAX_DEPTH)) is not None
    assert parse_json(nested(MAX_DEPTH - 1, '"[[[[{{{{"')) is not None  # counted, not nested
    with pytest.raises(InputRefused, match=f"nests {MAX_DEPTH + 1} levels"):
        parse_json(nested(MAX_DEPTH + 1))
    with pytest.raises(InputRefused, match=f"nests {MAX_DEPTH + 1} levels"):
        parse_json(nested(MAX_DEPTH + 1, '"[[]]"'))


def test_numbers_are_checked_where_they_are_and_said_as_they_were_sent() -> None:
    """Parsed in C, then checked an array at a time; a refusal quotes the number as sent (an
    integer past 64 bits in its digits, not as orjson's float) and names its place."""
    data = [0.5] * 10_000 + [-(2**53), 2**53]
    assert parse_json(json.dumps({"t": [{"data": data}]}))["t"][0]["data"] == data
    for body, field, said in (
            ('{"t": [1, 2, 9007199254740993]}', "'t[2]'", "9007199254740993"),
            ('{"t": [[1.5, NaN]]}', "'t[0][1]'", "NaN"),
            ('{"a": {"b": [1, {"c": -1e300}]}}', "'a.b[1].c'", "-1e+300"),
            ('{"w": 123456789012345678901234567890}', "'w'", "12345678901234567890..."),
            ('{"w": 1e999}', "'w'", "1e309 or past it"),
            ('[true, null, "x", Infinity]', "'[3]'", "Infinity")):
        with pytest.raises(InputRefused) as refused:
            parse_json(body)
        assert refused.value.message.startswith(f"{field} holds the number {said}, "), body
    with pytest.raises(InputRefused, match="a number of thousands of digits"):
        parse_json('{"w": ' + "9" * 5000 + "}")
    with pytest.raises(InputRefused, match="'s' must be valid Unicode text"):
        parse_json('{"s": "\\ud800"}')


def test_huge_numbers_and_overflowing_weights_are_400s(app: Flask, client: FlaskClient,
                                                       admin: dict) -> None:
    spec = {"name": "big", "arms": [ARMS[0], dict(ARMS[1], weight=0.5)]}
    text = json.dumps(spec).replace("0.5", "9" * 400)
    refused = post_raw(client, "/v1/experiments", text, admin)
    assert refused.status_code == 400 and "'arms[1].weight'" in refused.get_json()["error"]
    for rail in ("1" + "0" * 300, "1e400", "NaN", "-Infinity"):
        text = json.dumps({**spec, "guardrails": {"p99_latency_ms": 0}}).replace(
            '"p99_latency_ms": 0', f'"p99_latency_ms": {rail}')
        refused = post_raw(client, "/v1/experiments", text, admin)
        assert refused.status_code == 400, rail
        assert "'guardrails.p99_latency_ms'" in refused.get_json()["error"]
    # Each weight is finite, but their sum is not: once stored as a silently different split.
    both = {"name": "overflow", "arms": [dict(ARMS[0], weight=1.7e308),
                                         dict(ARMS[1], weight=1.7e308)]}
    assert client.post("/v1/experiments", json=both, headers=admin).status_code == 400
    # Below the JSON layer too: the service refuses what Python callers (the CLI) pass.
    experiments = Experiments(app.extensions["abvoc"].db)
    for weights in ((10**400, 1), (1.7e308, 1.7e308), (float("inf"), 1)):
        arms = [dict(ARMS[0], weight=weights[0]), dict(ARMS[1], weight=weights[1])]
        with pytest.raises(AbvocError, match="weight must be a number from 0"):
            experiments.create({"name": "direct", "arms": arms})
    with pytest.raises(AbvocError, match="guardrails.error_rate"):
        experiments.create({"name": "direct", "arms": ARMS,
                            "guardrails": {"error_rate": 10**400}})
    assert client.get("/v1/experiments", headers=admin).get_json()["experiments"] == []


class CountingStream(io.RawIOBase):
    """An endless request body that counts what the app reads of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        buffer[:] = b"[" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def test_oversized_bodies_are_refused_before_they_are_read(app: Flask, client: FlaskClient,
                                                           predictor: dict) -> None:
    before = stored(app)
    for content_type in ("application/json", "multipart/form-data; boundary=x", "text/plain"):
        stream = CountingStream()
        response = client.post("/v1/predict", headers={**predictor, "Content-Type": content_type},
                               environ_overrides={"wsgi.input": stream,
                                                  "CONTENT_LENGTH": str(50 * 2**20)})
        assert response.status_code == 413, content_type
        assert "limit" in response.get_json()["error"]
        assert stream.read_bytes == 0
    # Without a Content-Length (chunked), reading stops at the limit.
    stream = CountingStream()
    response = client.post("/v1/predict", headers={
        **predictor, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True})
    assert response.status_code == 413, (response.get_json(), stream.read_bytes)
    assert stream.read_bytes <= MAX_BODY_BYTES + 2**16
    assert stored(app) == before


def test_receipts_are_checked_before_any_lookup(app: Flask, client: FlaskClient,
                                                predictor: dict, corrector: dict) -> None:
    served = predict(client, predictor).get_json()
    body = {"prediction_id": served["prediction_id"], "receipt": served["receipt"],
            "corrected_output": "x"}
    for receipt in ("é" * 64, "\u2603", "0" * 64):
        response = client.post("/v1/corrections", json={**body, "receipt": receipt},
                               headers=corrector)
        assert response.status_code == 403, receipt
    # An unknown id with a wrong receipt says nothing about whether the id exists.
    probe = client.post("/v1/corrections", json={**body, "prediction_id": "f" * 32},
                        headers=corrector)
    assert probe.status_code == 403
    signed = receipts.sign("test-secret", "f" * 32)
    unknown = client.post("/v1/corrections", headers=corrector,
                          json={**body, "prediction_id": "f" * 32, "receipt": signed})
    assert unknown.status_code == 404
    assert not receipts.verify("test-secret", "\ud800", "00")
    assert client.post("/v1/corrections", json=body, headers=corrector).status_code == 202


def test_unknown_arm_names_are_404s(client: FlaskClient, admin: dict) -> None:
    exp = create(client, admin)
    for action in ("pause", "resume"):
        missing = client.post(f"/v1/experiments/{exp['id']}/arms/nope/{action}", headers=admin)
        assert missing.status_code == 404 and "no arm 'nope'" in missing.get_json()["error"]
        control = client.post(f"/v1/experiments/{exp['id']}/arms/control/{action}",
                              headers=admin)
        assert control.status_code == 400 and "control" in control.get_json()["error"]
    draft = client.post(f"/v1/experiments/{exp['id']}/arms/mixed/pause", headers=admin)
    assert draft.status_code == 409 and "is draft" in draft.get_json()["error"]
    assert client.post(f"/v1/experiments/{exp['id']}/start", headers=admin).status_code == 200
    paused = client.post(f"/v1/experiments/{exp['id']}/arms/mixed/pause", headers=admin)
    assert paused.status_code == 200
    shown = client.get(f"/v1/experiments/{exp['id']}", headers=admin).get_json()
    assert shown["arms"] == paused.get_json()["arms"]


def test_experiments_that_broke_results_are_refused(client: FlaskClient, admin: dict) -> None:
    """Two shadows of one candidate, or an arm named like a shadow, made two variants with one
    name, and GET /results answered 500 for them."""
    shadow = {"name": "s", "arms": ARMS[:2],
              "shadows": [{"candidate": "ocr-large-mixed"}, {"candidate": "ocr-large-mixed"}]}
    response = client.post("/v1/experiments", json=shadow, headers=admin)
    assert response.status_code == 400 and "twice" in response.get_json()["error"]
    named = {"name": "n", "arms": [ARMS[0], dict(ARMS[1], name="shadow:ocr-large-mixed")],
             "shadows": [{"candidate": "ocr-large-mixed"}]}
    response = client.post("/v1/experiments", json=named, headers=admin)
    assert response.status_code == 400 and "shadow:" in response.get_json()["error"]
    fine = create(client, admin, shadows=[{"candidate": "ocr-large-mixed"}])
    results = client.get(f"/v1/experiments/{fine['id']}/results", headers=admin)
    assert results.status_code == 200, results.get_json()


def test_error_bodies_keep_headers_and_carry_no_addresses(client: FlaskClient) -> None:
    response = client.open("/healthz", method="TRACE")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.is_json
    from app import _without_addresses

    echoed = "cannot identify image file <_io.BytesIO object at 0x7f3a2c1d9e50>"
    assert _without_addresses(echoed) == "cannot identify image file <object>"


def test_multipart_fields_given_twice_or_not_utf8_are_refused(app: Flask, client: FlaskClient,
                                                              predictor: dict) -> None:
    """The first of two `unit_id`s (which decides the arm) or of two images was served, and
    bytes that are not UTF-8 were stored as U+FFFD."""
    png = encode_png(_image().image)
    before = stored(app)

    def send(fields: list[tuple[str, Any]]) -> Any:
        body = b"".join(
            b"--x\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\""
            + (b"; filename=\"a.png\"\r\nContent-Type: image/png" if name == "image" else b"")
            + b"\r\n\r\n" + value + b"\r\n" for name, value in fields) + b"--x--\r\n"
        return client.post("/v1/predict", data=body, headers=predictor,
                           content_type="multipart/form-data; boundary=x")

    twice = send([("image", png), ("unit_id", b"u1"), ("unit_id", b"u2")])
    assert twice.status_code == 400 and "field(s) 'unit_id' given more than once" in \
        twice.get_json()["error"]
    two_images = send([("image", png), ("image", png), ("unit_id", b"u1")])
    assert two_images.status_code == 400 and "field(s) 'image' given" in \
        two_images.get_json()["error"]
    latin = send([("image", png), ("unit_id", b"\xff\xfe")])
    assert latin.status_code == 400 and "'unit_id' is not valid UTF-8" in \
        latin.get_json()["error"]
    assert stored(app) == before
    assert send([("image", png), ("unit_id", "ü".encode())]).status_code == 200

