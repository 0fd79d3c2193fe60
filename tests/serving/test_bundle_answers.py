"""The offline test reads a candidate's answer exactly as serving does: an answer every /v2
request would get a 502 for is an error for that line (naming it) and stores nothing, and an
answer serving reads is scored as what serving records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from serving.bundles import BundleRunner, register_bundle
from serving.bundles.offline import offline_test
from serving.bundles.offline_metrics import OfflineError
from serving.outputs import CandidateOutputError
from serving.registry import Registry
from serving.servable import BundleCandidate
from tests.support.stub_server import StubServer, reply

CLASSES = ["setosa", "versicolor", "virginica"]
FLOWER = [5.0, 3.4, 1.5, 0.2]


def _bundle(tmp_path: Path, answer: str, output: str = "type = \"label\"\n"
            f"classes = {json.dumps(CLASSES)}\n", name: str = "odd") -> Path:
    """A one-stage Python bundle whose stage returns `answer` (an expression of `x`)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "stage.py").write_text(
        "import numpy as np\n\n\nclass X:\n    pass\n\n\ndef boxed(value):\n"
        "    out = np.empty(1, dtype=object)\n    out[0] = value\n    return out\n\n\n"
        f"def run(tensors):\n    x = tensors['features']\n    return {answer}\n")
    (folder / "candidate.toml").write_text(
        f'name = "{name}"\nversion = "1"\nbackend = "onnxruntime"\n[[inputs]]\n'
        'name = "features"\ndatatype = "FP32"\nshape = [-1, 4]\n'
        f'[output]\n{output}[[stages]]\nname = "run"\nkind = "python"\n'
        'callable = "stage:run"\n')
    return folder


def _dataset(tmp_path: Path, label: object = "setosa") -> Path:
    path = tmp_path / "set.jsonl"
    line = {"inputs": {"features": FLOWER}, "label": label, "slice": "lab"}
    path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    return path


def _served(folder: Path) -> object:
    """What serving answers for one flower (or the CandidateOutputError it raises)."""
    with BundleRunner.open(folder) as runner:
        candidate = BundleCandidate(runner)
        return candidate.predict({"features": np.array([FLOWER], np.float32)}).output


NUMBER = 'type = "number"\n'
JSON = 'type = "json"\nschema = {type = "object", required = ["first"]}\n'
REFUSED = [  # (the stage's answer, the output, what serving and the offline test say)
    ("{'label': boxed(None)}", None, r"answered label 'None', which is not one of its classes"),
    ("{'label': np.array([7])}", None, r"class index 7, out of range for its 3 classes"),
    ("{'label': boxed({'setosa'})}", None, r"answered label \"\{'setosa'\}\", which is not"),
    ("{'label': boxed(X())}", None, r"answered label '<.*X object at .*>', which is not one"),
    ("{'number': np.array([float('nan')])}", NUMBER, r"answered nan, not a finite number"),
    ("{'json': boxed('{\"second\": 1}')}", JSON, r"JSON output does not match its schema"),
]


@pytest.mark.parametrize(("answer", "output", "fragment"), REFUSED,
                         ids=[c[2][:36] for c in REFUSED])
def test_an_answer_serving_refuses_is_an_error_for_its_line(
        registry: Registry, models: Path, tmp_path: Path, answer: str, output: str | None,
        fragment: str) -> None:
    folder = _bundle(tmp_path, answer, *([output] if output else []))
    with pytest.raises(CandidateOutputError, match=fragment):
        _served(folder)
    register_bundle(registry, models, folder)
    label = {NUMBER: 1.0, JSON: {"first": "x"}}.get(output or "", "setosa")
    with pytest.raises(OfflineError, match=r"^line 1: the candidate.*" + fragment) as info:
        offline_test(registry, "odd", _dataset(tmp_path, label))
    assert "serving would answer this request 502" in info.value.message
    assert registry.get("odd").offline_results == {}


def test_the_offline_test_reads_the_tensor_serving_reads(registry: Registry, models: Path,
                                                         tmp_path: Path) -> None:
    """Two tensors, neither named after the type: serving answers from the first that fits,
    and so does the offline test (it used to refuse, asking for a tensor named 'label')."""
    folder = _bundle(tmp_path, "{'foo': np.array(['versicolor']), 'bar': np.array([1.0])}")
    assert _served(folder) == "versicolor"
    register_bundle(registry, models, folder)
    results = offline_test(registry, "odd", _dataset(tmp_path, "versicolor"))
    assert results["overall"]["accuracy"] == 1.0
    assert results["overall"]["output_shares"] == {"setosa": 0, "versicolor": 1.0,
                                                   "virginica": 0}


def test_a_python_number_in_an_object_array_is_read_alike(registry: Registry, models: Path,
                                                          tmp_path: Path) -> None:
    folder = _bundle(tmp_path, "{'number': boxed(2.5)}", NUMBER)
    assert _served(folder) == 2.5
    register_bundle(registry, models, folder)
    assert offline_test(registry, "odd", _dataset(tmp_path, 2.0))["overall"]["mae"] == 0.5


def _remote(tmp_path: Path, url: str) -> Path:
    """A [remote] bundle for a stub that answers POSTs only: registered unchecked."""
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "candidate.toml").write_text(
        f'name = "far"\nversion = "1"\n[[inputs]]\nname = "features"\ndatatype = "FP32"\n'
        f'shape = [-1, 4]\n[output]\ntype = "label"\nclasses = {json.dumps(CLASSES)}\n'
        f'[remote]\nurl = "{url}"\nmodel = "iris"\ntimeout_ms = 3000\n')
    return folder


def _answering(payload: Callable[[], bytes]) -> Callable:
    def behave(handler, _body: bytes) -> None:  # noqa: ANN001
        data = payload()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return behave


def test_a_remote_label_outside_its_classes_stores_nothing(
        registry: Registry, models: Path, tmp_path: Path,
        stub_server: Callable[..., StubServer]) -> None:
    rose = stub_server(lambda h, _b: reply(h, 200, {"outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["rose"]}]}))
    register_bundle(registry, models, _remote(tmp_path, rose.url), check_remote=False)
    with pytest.raises(OfflineError, match=r"^line 1: the candidate answered label 'rose', "
                                           r"which is not one of its classes"):
        offline_test(registry, "far", _dataset(tmp_path))
    assert registry.get("far").offline_results == {}


def test_a_remote_answer_nested_past_the_parser_is_malformed_not_a_crash(
        registry: Registry, models: Path, tmp_path: Path,
        stub_server: Callable[..., StubServer]) -> None:
    deep = stub_server(_answering(lambda: b"[" * 100_000 + b"]" * 100_000))
    register_bundle(registry, models, _remote(tmp_path, deep.url), check_remote=False)
    with pytest.raises(OfflineError, match=r"^line 1: the candidate failed: remote model 'iris'"
                                           r".* answered 200 with a body that is not a JSON "
                                           r"object; the candidate failed on every example "
                                           r"\(2\), so nothing was stored$") as info:
        offline_test(registry, "far", _dataset(tmp_path))
    assert info.value.status == 502


def test_a_remote_refusing_some_inputs_fails_those_lines_as_online(
        registry: Registry, models: Path, tmp_path: Path,
        stub_server: Callable[..., StubServer]) -> None:
    """The input matched the manifest, so the server's 422 is the candidate's failure on that
    line (online: a recorded 502), not the run's problem that stopped it."""
    calls = []

    def half(handler, _body: bytes) -> None:  # noqa: ANN001
        calls.append(1)
        if len(calls) % 2:
            reply(handler, 422, {"error": "expects INT64"})
        else:
            reply(handler, 200, {"outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}]})

    picky = stub_server(half)
    register_bundle(registry, models, _remote(tmp_path, picky.url), check_remote=False)
    results = offline_test(registry, "far", _dataset(tmp_path))
    assert results["overall"]["n"] == 2 and results["overall"]["failed"] == 1
    assert "refused the input (422): expects INT64" in results["failures"][0]
