"""BYTES inputs reach a candidate's model as the caller's text: a local ONNX bundle's string
input (onnxruntime wrote bytes as "b'hello'") through /v2, and a remote candidate on real KServe
0.21 and MLServer 1.7.1 (V2 JSON, each serving an echo model). Bytes that are not UTF-8 sent to
a model that takes text are the caller's 400, never recorded against the candidate."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.store.models import ServedPrediction
from tests.support import inference_servers
from tests.support.keys import bearer
from tests.support.text_bundles import TEXT, onnx_echo_bundle, remote_text_bundle
from tests.support.v2 import upload


def _text_body(value: str, *, base64_marked: bool = False) -> dict:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": [value]}
    if base64_marked:
        tensor["parameters"] = {"content_type": "base64"}
    return {"inputs": [tensor], "parameters": {"unit_id": "u1"}}


def _answer(app: Flask, scope: str, body: dict) -> tuple[int, dict]:
    response = app.test_client().post(f"/v2/models/{scope}/infer", json=body,
                                      headers=bearer(app, "predict"))
    return response.status_code, response.get_json()


def _output(answer: dict) -> str:
    tensor = next(t for t in answer["outputs"] if t["name"] == "output")
    assert tensor["parameters"]["content_type"] == "str", tensor
    return tensor["data"][0]


def _served(app: Flask) -> int:
    with app.extensions["abvoc"].db.session() as s:
        return s.scalar(select(func.count()).select_from(ServedPrediction)) or 0


def test_a_local_onnx_string_input_gets_the_text(v2app: Flask, tmp_path: Path) -> None:
    upload(v2app.test_client(), bearer(v2app, "admin"), onnx_echo_bundle(tmp_path))
    status, answer = _answer(v2app, "echo", _text_body("h\u00e9llo"))
    assert status == 200, answer
    assert _output(answer) == "h\u00e9llo"
    encoded = base64.b64encode(b"hello").decode()
    status, answer = _answer(v2app, "echo", _text_body(encoded, base64_marked=True))
    assert status == 200, answer
    assert _output(answer) == "hello"
    served = _served(v2app)
    status, refused = _answer(v2app, "echo", _text_body(base64.b64encode(b"\xff").decode(),
                                                        base64_marked=True))
    assert status == 400, refused
    assert refused["error"].startswith("input 'text' holds a value that is not UTF-8 text")
    assert _served(v2app) == served, "the caller's bad input was recorded"


@pytest.fixture(scope="module", params=["mlserver_echo", "kserve_echo"])
def echo(request: pytest.FixtureRequest) -> Iterator[inference_servers.InferenceServer]:
    running = getattr(inference_servers, request.param)().start()
    yield running
    running.stop()


def test_a_remote_model_receives_the_text_not_base64(
        v2app: Flask, echo: inference_servers.InferenceServer, tmp_path: Path) -> None:
    """KServe ignores content_type "base64" (its model got "aMOpbGxv" for "h\u00e9llo"): text
    goes as plain UTF-8 strings, as Triton's and MLServer's clients send it."""
    name = f"echo-{echo.kind.lower()}"
    upload(v2app.test_client(), bearer(v2app, "admin"),
           remote_text_bundle(tmp_path, name, echo.url))
    for text in ("h\u00e9llo", "plain words", ""):
        status, answer = _answer(v2app, name, _text_body(text))
        assert status == 200, answer
        assert _output(answer) == text
    if echo.kind == "MLServer":  # bytes that are not text still go as base64, marked so
        status, answer = _answer(v2app, name, _text_body(base64.b64encode(b"ab\xff").decode(),
                                                         base64_marked=True))
        assert status == 200, answer
        assert _output(answer) == "ab\ufffd"


def test_a_nul_in_text_sent_as_base64_or_binary_is_the_callers_400(
        v2app: Flask, tmp_path: Path) -> None:
    """A NUL in a JSON string is refused before any route sees it; the same text sent as base64
    or as binary tensor data reached the model, whose echo of it (no answer abvoc keeps holds a
    NUL) was recorded as the candidate's failure, a 502 counted by its error-rate guardrail."""
    upload(v2app.test_client(), bearer(v2app, "admin"), onnx_echo_bundle(tmp_path, output=TEXT))
    served = _served(v2app)
    status, refused = _answer(v2app, "echo", _text_body(base64.b64encode(b"a\0b").decode(),
                                                        base64_marked=True))
    assert status == 400, refused
    assert refused["error"].startswith("input 'text' holds a NUL (\\u0000) character (item 0)")
    value = b"a\0b"
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1],
                                     "parameters": {"binary_data_size": 4 + len(value)}}],
                         "parameters": {"unit_id": "u1"}}).encode()
    response = v2app.test_client().post(
        "/v2/models/echo/infer", data=header + struct.pack("<I", len(value)) + value,
        headers={**bearer(v2app, "predict"), "Inference-Header-Content-Length": str(len(header)),
                 "Content-Type": "application/octet-stream"})
    assert response.status_code == 400, response.get_json()
    assert "NUL" in response.get_json()["error"]
    assert _served(v2app) == served, "the caller's bad input was recorded against the candidate"
