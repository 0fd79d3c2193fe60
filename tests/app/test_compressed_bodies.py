"""Compressed request bodies: gzip and deflate inflated before the app reads them (every route,
every input check), bounded so that a decompression bomb is a 413 after at most the limit is
made, and anything else about the encoding a 4xx that says what to send; nothing stored on
refusal."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import pytest
from flask import Flask, Response, request
from sqlalchemy import func, select

from app.compressed import BodyError, InflateBodies, _compressed, inflate
from core.store.models import Experiment, OutboxEvent
from tests.support.bundles import EXAMPLE
from tests.support.keys import bearer
from tests.support.v2 import flowers, infer_body, output_of, upload

LIMIT = 1 << 20


def _bomb(size: int) -> bytes:
    """`size` zero bytes, gzipped: about a thousandth of the size."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as stream:
        for _ in range(size // (1 << 20)):
            stream.write(bytes(1 << 20))
    return out.getvalue()


def test_inflate_reads_gzip_and_deflate_and_refuses_the_rest() -> None:
    text = b'{"a": [1, 2, 3]}' * 100
    assert inflate(gzip.compress(text), "gzip", LIMIT) == text
    assert inflate(zlib.compress(text), "deflate", LIMIT) == text
    cases = [
        (lambda: inflate(_bomb(64 << 20), "gzip", LIMIT), 413, "inflates past the limit"),
        (lambda: inflate(gzip.compress(text)[:-12], "gzip", LIMIT), 400, "ends before"),
        (lambda: inflate(b"not gzip at all", "gzip", LIMIT), 400, "not valid gzip data"),
        (lambda: inflate(gzip.compress(text), "deflate", LIMIT), 400, "not valid deflate"),
        (lambda: inflate(zlib.compress(text) + b"xx", "deflate", LIMIT), 400,
         "2 bytes after its deflate stream"),
    ]
    for call, status, words in cases:
        with pytest.raises(BodyError, match=words) as refused:
            call()
        assert refused.value.status == status


def test_compressed_bodies_reach_every_route_as_sent(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    assert isinstance(v2app.wsgi_app, InflateBodies)
    body = json.dumps(infer_body(flowers(1), "u1")).encode()
    plain = client.post("/v2/models/default/infer", headers=admin, data=body,
                        content_type="application/json")
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                             ("GZip ", gzip.compress(body))):
        answer = client.post("/v2/models/default/infer", data=packed,
                             headers={**admin, "Content-Encoding": encoding},
                             content_type="application/json")
        assert answer.status_code == 200, answer.get_json()
        assert output_of(answer.get_json()) == output_of(plain.get_json())
    spec = {"name": "packed", "arms": [
        {"name": "a", "candidate": "iris-onnx", "weight": 0.5, "control": True},
        {"name": "b", "candidate": "iris-onnx", "weight": 0.5}]}
    created = client.post("/v1/experiments", headers={**admin, "Content-Encoding": "gzip"},
                          data=gzip.compress(json.dumps(spec).encode()),
                          content_type="application/json")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["name"] == "packed"
    # The input checks see the inflated body: a lone surrogate is refused naming the field.
    sneaky = client.post("/v1/experiments", headers={**admin, "Content-Encoding": "gzip"},
                         data=gzip.compress(b'{"name": "\\ud800", "arms": []}'),
                         content_type="application/json")
    assert sneaky.status_code == 400 and "'name'" in sneaky.get_json()["error"]


def test_bad_encodings_and_bombs_are_4xx_that_store_nothing(v2app: Flask) -> None:
    client = v2app.test_client()
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)

    def stored() -> tuple[int, int]:
        with v2app.extensions["abvoc"].db.session() as s:
            return (s.scalar(select(func.count()).select_from(OutboxEvent)),
                    s.scalar(select(func.count()).select_from(Experiment)))

    before = stored()
    body = json.dumps(infer_body(flowers(1), "u1")).encode()
    cases = [
        ("br", body, 415, "Content-Encoding 'br' is not one abvoc reads"),
        ("gzip", body, 400, "not valid gzip data"),
        ("gzip", _bomb(64 << 20), 413, "inflates past the limit of 33554432 bytes"),
    ]
    for encoding, data, status, words in cases:
        for path in ("/v2/models/default/infer", "/v1/experiments", "/healthz"):
            answer = client.post(path, data=data, content_type="application/json",
                                 headers={**admin, "Content-Encoding": encoding})
            assert answer.status_code == status, (path, encoding, answer.data[:200])
            assert words in answer.get_json()["error"]
    # Within the inflating bound but past the route's own: the route's 413.
    padded = json.dumps({"name": "x" + " " * (5 << 20)}).encode()
    answer = client.post("/v1/experiments", data=gzip.compress(padded),
                         content_type="application/json",
                         headers={**admin, "Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "the limit is 4194304" in answer.get_json()["error"]
    assert stored() == before


def test_answers_are_compressed_for_clients_that_accept_it(v2app: Flask) -> None:
    import brotli
    from backports import zstd

    client = v2app.test_client()
    plain = client.get("/openapi.json")
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    decoders = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress,
                "zstd": zstd.decompress}
    # The client's ranking first (RFC 9110 quality values), abvoc's order among equals.
    for accepted, chosen in (("gzip", "gzip"), ("deflate", "deflate"), ("br", "br"),
                             ("zstd", "zstd"), ("gzip, deflate, br, zstd", "zstd"),
                             ("gzip;q=1.0, br;q=0.5", "gzip"), ("*", "zstd"),
                             ("gzip;q=0, deflate", "deflate"), ("*, zstd;q=0", "br"),
                             ("gzip;q=abc, br;q=0.2", "br"), ("GZIP", "gzip")):
        answer = client.get("/openapi.json", headers={"Accept-Encoding": accepted})
        assert answer.headers.get("Content-Encoding") == chosen, accepted
        assert int(answer.headers["Content-Length"]) == len(answer.data) < len(plain.data) / 4
        assert decoders[chosen](answer.data) == plain.data
        assert "Accept-Encoding" in answer.headers["Vary"]
    # A small answer, an encoding refused (q=0) or unknown, or none asked: the answer as it is.
    for path, accepted in (("/healthz", "gzip"), ("/openapi.json", "identity"),
                           ("/openapi.json", "gzip;q=0"), ("/openapi.json", "*;q=0"),
                           ("/openapi.json", "compress, x-gzip"),
                           ("/openapi.json", "gzip;q=-1, br;q=2")):
        answer = client.get(path, headers={"Accept-Encoding": accepted})
        assert "Content-Encoding" not in answer.headers, accepted
        assert json.loads(answer.data)
    # A strong validator names the representation, and a revalidation of it is a 304.
    body = json.dumps({"x": "y" * 4000})
    with v2app.test_request_context(headers={"Accept-Encoding": "gzip"}):
        first = _compressed(Response(body, mimetype="application/json",
                                     headers={"ETag": '"v1"'}))
    assert first.headers["ETag"] == '"v1-gzip"' and first.headers["Content-Encoding"] == "gzip"
    with v2app.test_request_context(headers={"Accept-Encoding": "gzip",
                                             "If-None-Match": '"v1-gzip"'}):
        again = _compressed(Response(body, mimetype="application/json",
                                     headers={"ETag": '"v1"'}))
        sent = list(again.get_app_iter(request.environ))
    assert again.status_code == 304 and sent == []
    assert again.get_data() == body.encode()  # never sent, so never compressed
    # The metrics too; a V2 answer of one prediction is under the 1 KiB threshold: plain.
    admin = bearer(v2app, "admin")
    upload(client, admin, EXAMPLE)
    for i in range(3):
        assert client.post("/v2/models/default/infer", headers=admin,
                           json=infer_body(flowers(1), f"u{i}")).status_code == 200
    metrics = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert metrics.headers["Content-Encoding"] == "gzip"
    assert b"abvoc_predictions_total" in gzip.decompress(metrics.data)
    v2 = client.post("/v2/models/default/infer", headers={**admin, "Accept-Encoding": "gzip"},
                     json=infer_body(flowers(1), "u9"))
    assert "Content-Encoding" not in v2.headers and len(v2.data) < 1024
    assert output_of(v2.get_json()) in ("setosa", "versicolor", "virginica")
