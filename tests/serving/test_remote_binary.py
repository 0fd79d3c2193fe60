"""Remote candidates with `binary_data = true`: tensors go to the server and come back with the
binary tensor data extension. Real KServe 0.21 answers as onnxruntime bare does (binary both
ways); real MLServer 1.7.1, which does not read the extension, is a clear error; a stub server
shows the bytes on the wire, BYTES included."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serving.bundles import load_manifest, register_bundle
from serving.bundles.manifest import RemoteSpec
from serving.remote import RemoteClient, RemoteError
from tests.support import inference_servers
from tests.support.bundles import sqlite_registry
from tests.support.stub_server import StubServer, stub_server  # noqa: F401 - fixture
from tests.support.v2 import remote_bundle

MODEL = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "iris-onnx" / "model.onnx"
ROWS = np.random.default_rng(3).normal(5.0, 1.8, size=(16, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def kserve() -> Iterator[inference_servers.InferenceServer]:
    running = inference_servers.kserve(MODEL).start()
    yield running
    running.stop()


def test_kserve_reads_and_writes_binary_tensors(kserve: inference_servers.InferenceServer,
                                                tmp_path: Path) -> None:
    bare = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    (expected,) = bare.run(["probabilities"], {"features": ROWS})
    folder = remote_bundle(tmp_path, "iris-kserve", kserve.url)
    toml = folder / "candidate.toml"
    toml.write_text(toml.read_text() + "binary_data = true\n")
    registry = next(sqlite_registry(tmp_path))
    info = register_bundle(registry, tmp_path / "models", folder)
    assert info.pipeline["remote"]["binary_data"] is True
    spec = load_manifest(Path(info.artifacts)).remote
    assert spec is not None and spec.binary_data
    with RemoteClient.from_spec(spec) as client:
        got = client.infer({"features": ROWS})
        named = client.infer({"features": ROWS}, outputs=["probabilities"])
    np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-6, atol=1e-8)
    assert list(named) == ["probabilities"]
    np.testing.assert_array_equal(named["probabilities"], got["probabilities"])


def test_mlserver_refuses_binary_tensors_in_its_own_words() -> None:
    server = inference_servers.mlserver(MODEL).start()
    try:
        with RemoteClient(server.url, "iris", timeout_ms=5000, binary_data=True) as client, \
                pytest.raises(RemoteError) as refused:
            client.infer({"features": ROWS})
        assert refused.value.remote_status is not None and refused.value.remote_status >= 400
        assert "remote model 'iris'" in refused.value.message
    finally:
        server.stop()


def test_the_wire_holds_a_json_header_then_the_bytes(
        stub_server: Callable[..., StubServer]) -> None:  # noqa: F811
    seen: list[tuple[dict, bytes, str]] = []

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        length = int(handler.headers["Inference-Header-Content-Length"])
        seen.append((json.loads(body[:length]), body[length:], handler.headers["Content-Type"]))
        words = struct.pack("<I", 2) + b"ok" + struct.pack("<I", 1) + b"\xff"
        head = json.dumps({"model_name": "echo", "outputs": [
            {"name": "p", "datatype": "FP32", "shape": [1, 2],
             "parameters": {"binary_data_size": 8}},
            {"name": "n", "datatype": "INT64", "shape": [1], "data": [7]},
            {"name": "w", "datatype": "BYTES", "shape": [2],
             "parameters": {"binary_data_size": len(words)}}]}).encode()
        data = head + np.array([0.25, 0.75], "<f4").tobytes() + words
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Inference-Header-Content-Length", str(len(head)))
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    server = stub_server(answer)
    words = np.array([b"a\x00b", "caf\u00e9".encode()], dtype=object)
    with RemoteClient.from_spec(RemoteSpec(server.url, "echo", binary_data=True)) as client:
        out = client.infer({"x": ROWS[:1], "w": words}, outputs=["p", "n", "w"],
                           parameters={"unit": "u"})
    head, raw, content_type = seen[0]
    assert content_type == "application/octet-stream"
    assert head["parameters"] == {"unit": "u", "binary_data_output": True}
    assert head["outputs"] == [{"name": n, "parameters": {"binary_data": True}}
                               for n in ("p", "n", "w")]
    assert [t["parameters"]["binary_data_size"] for t in head["inputs"]] == [16, 16]
    assert raw == ROWS[:1].astype("<f4").tobytes() + struct.pack("<I", 3) + b"a\x00b" \
        + struct.pack("<I", 5) + "caf\u00e9".encode()
    assert out["p"].tolist() == [[0.25, 0.75]] and out["n"].tolist() == [7]
    assert out["w"].tolist() == [b"ok", b"\xff"]
