"""The remote-candidate client against real MLServer 1.7.1 and KServe 0.21 (same answers as
onnxruntime called bare), and against tiny local servers that hang, trickle, fail or echo:
latency stays within the deadline and every error carries its status."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serving.bundles import ManifestError, register_bundle
from serving.bundles.manifest import RemoteSpec
from serving.registry import Registry
from serving.remote import (
    RemoteBadInput,
    RemoteClient,
    RemoteError,
    RemoteRefused,
    RemoteTimeout,
    RemoteUnavailable,
)
from tests.support import inference_servers
from tests.support.ports import free_port
from tests.support.stub_server import StubServer, reply

MODEL = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "iris-onnx" / "model.onnx"


def _flowers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 1.8, size=(n, 4)).astype(np.float32)


@pytest.fixture(scope="module", params=["mlserver", "kserve"])
def server(request: pytest.FixtureRequest) -> Iterator[inference_servers.InferenceServer]:
    running = getattr(inference_servers, request.param)(MODEL).start()
    yield running
    running.stop()


def test_real_servers_answer_like_onnxruntime_bare(
        server: inference_servers.InferenceServer) -> None:
    bare = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    batch = _flowers(64)
    (expected,) = bare.run(["probabilities"], {"features": batch})
    with RemoteClient(server.url, "iris", timeout_ms=5000, retries=1) as client:
        assert client.ready()
        got = client.infer({"features": batch})
        assert client.metadata()["name"] == "iris"
    assert got["probabilities"].dtype == np.float32
    np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-6, atol=1e-8)


def test_registered_remote_candidate_reaches_the_real_server(
        server: inference_servers.InferenceServer, tmp_path: Path) -> None:
    """A [remote] manifest, registered like any bundle, gives a working client."""
    from core.store import Database, schema
    from serving.bundles import load_manifest, register_bundle
    from serving.registry import Registry
    from tests.support.v2 import remote_bundle

    folder = remote_bundle(tmp_path, f"iris-{server.kind.lower()}", server.url, retries=1)
    with Database(f"sqlite:///{tmp_path / 'r.db'}") as db:
        schema.upgrade(db)
        info = register_bundle(Registry(db), tmp_path / "models", folder)
    assert info.backend == "remote" and info.pipeline["remote"]["url"] == server.url
    spec = load_manifest(Path(info.artifacts)).remote
    assert spec is not None
    with RemoteClient.from_spec(spec) as client:
        labels = client.infer({"features": _flowers(8)})["probabilities"].argmax(-1)
    assert labels.shape == (8,)


def test_real_server_from_many_threads(server: inference_servers.InferenceServer) -> None:
    bare = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    client = RemoteClient(server.url, "iris", timeout_ms=10_000, pool_size=4)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for k in range(5):
                batch = _flowers(1 + k, seed * 10 + k)
                (expected,) = bare.run(["probabilities"], {"features": batch})
                out = client.infer({"features": batch})["probabilities"]
                np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-8)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    client.close()
    assert errors == []


def test_real_server_errors_carry_the_servers_words(
        server: inference_servers.InferenceServer) -> None:
    with RemoteClient(server.url, "no-such-model", timeout_ms=5000) as client:
        with pytest.raises(RemoteError) as info:
            client.infer({"features": _flowers(1)})
        assert not client.ready()
    assert info.value.remote_status == 404 and info.value.status == 502
    assert "no-such-model" in info.value.message
    with RemoteClient(server.url, "iris", timeout_ms=5000) as client, \
            pytest.raises(RemoteError) as info:
        client.infer({"wrong_name": _flowers(2)})
    assert info.value.remote_status is not None and info.value.remote_status >= 400
    assert "answered" in info.value.message


# --- tiny local servers that misbehave on purpose ------------------------------------------------

def _timed(fn: Callable[[], object]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_hanging_server_is_cut_at_the_deadline_across_retries(
        stub_server: Callable[..., StubServer]) -> None:
    hanging = stub_server(lambda h, body: hanging.release.wait(10))
    client = RemoteClient(hanging.url, "iris", timeout_ms=300, retries=3)
    error, took = _timed(lambda: client.infer({"features": _flowers(1)}))
    client.close()
    assert isinstance(error, RemoteTimeout) and error.timed_out and error.status == 504
    assert 0.28 <= took < 0.8, took
    assert "did not answer within 300 ms" in error.message


def test_trickling_server_is_cut_at_the_deadline(
        stub_server: Callable[..., StubServer]) -> None:
    def trickle(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(100):
            if trickling.release.wait(0.05):
                return
            handler.wfile.write(b" ")
            handler.wfile.flush()

    trickling = stub_server(trickle)
    with RemoteClient(trickling.url, "iris", timeout_ms=400) as client:
        error, took = _timed(lambda: client.infer({"features": _flowers(1)}))
    assert isinstance(error, RemoteTimeout)
    assert took < 0.9, took


def test_server_error_500_carries_status_and_message_and_is_not_retried(
        stub_server: Callable[..., StubServer]) -> None:
    failing = stub_server(lambda h, body: reply(h, 500, {"error": "model exploded on row 3"}))
    with RemoteClient(failing.url, "iris", timeout_ms=2000, retries=3) as client:
        error, took = _timed(lambda: client.infer({"features": _flowers(1)}))
    assert isinstance(error, RemoteError) and not error.timed_out
    assert error.status == 502 and error.remote_status == 500
    assert "answered 500: model exploded on row 3" in error.message
    assert failing.hits == 1 and took < 1.0


def test_unavailable_server_is_retried_then_reported(
        stub_server: Callable[..., StubServer]) -> None:
    busy = stub_server(lambda h, body: reply(h, 503, {"detail": "overloaded"}))
    with RemoteClient(busy.url, "iris", timeout_ms=2000, retries=2) as client:
        error, _ = _timed(lambda: client.infer({"features": _flowers(1)}))
    assert isinstance(error, RemoteUnavailable) and error.remote_status == 503
    assert "overloaded" in error.message and busy.hits == 3


def test_a_refused_input_is_the_candidates_failure_not_retried(
        stub_server: Callable[..., StubServer]) -> None:
    """The input matched the manifest, so a 400/422 says the manifest and the server differ:
    the candidate's failure (502, recorded and counted), once: the same input fails again."""
    picky = stub_server(lambda h, body: reply(h, 422, {"error": "features must be [-1, 4]"}))
    with RemoteClient(picky.url, "iris", timeout_ms=2000, retries=2) as client, \
            pytest.raises(RemoteRefused, match=r"features must be \[-1, 4\]") as info:
        client.infer({"features": _flowers(1)})
    assert info.value.status == 502 and info.value.repeats and picky.hits == 1
    assert "its manifest's inputs and what the server takes differ" in info.value.message
    # FastAPI's list of problems (a 422 body of MLServer's) as JSON, not a Python repr.
    detail = [{"type": "json_invalid", "loc": ["body", 70], "msg": "JSON decode error"}]
    fastapi = stub_server(lambda h, body: reply(h, 422, {"detail": detail}))
    with RemoteClient(fastapi.url, "iris", timeout_ms=2000) as client, \
            pytest.raises(RemoteRefused) as info:
        client.infer({"features": _flowers(1)})
    assert f"refused the input (422): {json.dumps(detail)}" in info.value.message


def test_nan_is_never_written_into_a_json_body(stub_server: Callable[..., StubServer]) -> None:
    """JSON has no NaN: written as a token, MLServer refused the body (and KServe answered NaN
    scores); the caller's input, refused before any call, and nothing to count."""
    server = stub_server(lambda h, body: reply(h, 200, {"outputs": []}))
    flowers = _flowers(1)
    flowers[0, 1] = np.nan
    with RemoteClient(server.url, "iris", timeout_ms=2000) as client, \
            pytest.raises(RemoteBadInput, match="holds NaN or Infinity") as info:
        client.infer({"features": flowers})
    assert info.value.status == 400 and server.hits == 0


def test_nothing_listening_is_unavailable_quickly() -> None:
    with RemoteClient(f"http://127.0.0.1:{free_port()}", "iris", timeout_ms=2000,
                      retries=2) as client:
        error, took = _timed(lambda: client.infer({"features": _flowers(1)}))
    assert isinstance(error, RemoteUnavailable) and error.status == 503
    assert "unreachable" in error.message and took < 1.0


def test_bytes_and_versions_travel_as_v2_json(
        stub_server: Callable[..., StubServer]) -> None:
    seen: list[tuple[str, dict]] = []

    def echo(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        request = json.loads(body)
        seen.append((handler.path, request))
        reply(handler, 200, {"model_name": "echo", "outputs": request["inputs"]})

    echoing = stub_server(echo)
    words = np.array([b"\x00\x01binary", "naïve".encode()], dtype=object)
    spec = RemoteSpec(echoing.url, "echo", version="7", timeout_ms=2000)
    with RemoteClient.from_spec(spec) as client:
        out = client.infer({"words": words, "n": np.array([[1, 2]], np.int64),
                            "blob": np.array([b"\xff\xfe"], dtype=object)}, outputs=["words"])
    path, request = seen[0]
    assert path == "/v2/models/echo/versions/7/infer"
    # Text as plain strings (KServe ignores the base64 mark); bytes that are not UTF-8 as base64.
    assert request["inputs"][0]["parameters"] == {"content_type": "str"}
    assert request["inputs"][0]["data"] == ["\x00\x01binary", "naïve"]
    assert request["inputs"][2]["parameters"] == {"content_type": "base64"}
    assert out["blob"].tolist() == [b"\xff\xfe"]
    assert request["outputs"] == [{"name": "words"}]
    assert out["words"].tolist() == words.tolist()
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [[1, 2]]


def test_malformed_answer_is_a_remote_error(
        stub_server: Callable[..., StubServer]) -> None:
    odd = stub_server(lambda h, body: reply(h, 200, {"outputs": [{"name": "p", "datatype": "FP32",
                                                            "shape": [2], "data": [1.0]}]}))
    with RemoteClient(odd.url, "iris", timeout_ms=2000) as client, \
            pytest.raises(RemoteError, match="malformed outputs") as info:
        client.infer({"features": _flowers(1)})
    assert info.value.status == 502


def _raw(status: int, body: bytes, headers: dict[str, str] | None = None) -> Callable:
    def behave(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return behave


ODD_ANSWERS = [  # (status, body, what the RemoteError says)
    (200, b'{"hello": 1}', r"answered without an 'outputs' list of tensors \(its answer has "
                           r"the keys \['hello'\]\)"),
    (200, b'{"outputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}',
     r"malformed outputs: a tensor has no 'name'$"),
    (307, b"", r"answered 307: the server redirected the call; give the URL it serves from"),
    (200, b"[" * 100_000 + b"]" * 100_000, r"answered 200 with a body that is not a JSON object"),
    # 900 lists deep (orjson reads it): flattened by recursion, a RecursionError, a 500.
    (200, b'{"outputs": [{"name": "label", "datatype": "BYTES", "shape": [1], "data": '
          + b"[" * 900 + b'"versicolor"' + b"]" * 900 + b"}]}",
     r"malformed outputs: tensor 'label': its data nests more than 32 lists deep"),
    # Passed on to the caller as V2 outputs with no string name, or the last of two kept.
    (200, b'{"outputs": [{"name": null, "datatype": "FP32", "shape": [1], "data": [1]}]}',
     r"malformed outputs: a tensor's 'name' must be a non-empty string, got None$"),
    (200, b'{"outputs": [{"name": 5, "datatype": "FP32", "shape": [1], "data": [1]}]}',
     r"malformed outputs: a tensor's 'name' must be a non-empty string, got 5$"),
    (200, b'{"outputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": [1]}, '
          b'{"name": "p", "datatype": "FP32", "shape": [1], "data": [2]}]}',
     r"malformed outputs: output 'p' is given twice$"),
]


@pytest.mark.parametrize(("status", "body", "fragment"), ODD_ANSWERS,
                         ids=[c[2][:30] for c in ODD_ANSWERS])
def test_odd_answers_are_502s_that_say_what_is_wrong(
        stub_server: Callable[..., StubServer], status: int, body: bytes,
        fragment: str) -> None:
    odd = stub_server(_raw(status, body, {"Location": "http://127.0.0.1:9/elsewhere"}))
    with RemoteClient(odd.url, "iris", timeout_ms=2000, retries=2) as client, \
            pytest.raises(RemoteError, match=fragment) as info:
        client.infer({"features": _flowers(1)})
    assert info.value.status == 502 and odd.hits == 1  # none of them is retried
    assert info.value.repeats  # the same input gets the same answer: no "try again"


@pytest.mark.parametrize(("status", "passes"), [
    (404, False), (405, False), (413, False), (415, False), (501, False),
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True)])
def test_only_errors_that_may_pass_are_worth_another_try(
        stub_server: Callable[..., StubServer], status: int, passes: bool) -> None:
    """A 404 (no such model there), a 413 or an unsupported method comes back the same until
    the server's operator changes something; a 5xx, a 408 or a 429 may pass."""
    server = stub_server(lambda h, body: reply(h, status, {"error": "said so"}))
    with RemoteClient(server.url, "iris", timeout_ms=2000) as client, \
            pytest.raises(RemoteError, match=f"answered {status}: said so") as info:
        client.infer({"features": _flowers(1)})
    assert info.value.repeats is not passes


def test_remote_manifest(registry: Registry, models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    text = """name = "iris-remote"\nversion = "3"\n[[inputs]]\nname = "features"
datatype = "FP32"\nshape = [-1, 4]\n[output]\ntype = "number"
[remote]\nurl = "http://127.0.0.1:9/"\nmodel = "iris"\ntimeout_ms = 250\nretries = 2\n"""
    (folder / "candidate.toml").write_text(text)
    info = register_bundle(registry, models, folder, check_remote=False)  # nothing serves :9
    assert info.backend == "remote"
    assert info.pipeline["remote"] == {"url": "http://127.0.0.1:9", "model": "iris",
                                       "timeout_ms": 250.0, "retries": 2, "binary_data": False}
    (folder / "candidate.toml").write_text(text.replace('version = "3"', 'version = "4"')
                                           + '[[stages]]\nname = "a"\nkind = "python"\n'
                                             'callable = "m:f"\n')
    with pytest.raises(ManifestError, match=r"\[remote\] candidate has no \[\[stages\]\]"):
        register_bundle(registry, models, folder)
    (folder / "candidate.toml").write_text(text.replace("http://127.0.0.1:9/", "ftp://x"))
    with pytest.raises(ManifestError, match=r"remote.url 'ftp://x'"):
        register_bundle(registry, models, folder)
    (folder / "candidate.toml").write_text(text + "[batching]\ntimeout_ms = 100\n")
    with pytest.raises(ManifestError, match=r"\[remote\] candidate has no \[batching\]"):
        register_bundle(registry, models, folder)
    (folder / "candidate.toml").write_text(text + 'binary_data = "yes"\n')
    with pytest.raises(ManifestError, match=r"remote.binary_data must be a bool, got 'yes'"):
        register_bundle(registry, models, folder)
