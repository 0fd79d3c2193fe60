"""An ONNX model with a string input (tensor(string), V2 BYTES) receives the text itself:
onnxruntime writes a bytes object as its repr, so b"hello" reached the model as "b'hello'" and a
label bundle answered no class. A value that is not UTF-8 is the caller's 400 naming the input,
never a failure of the candidate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.bundles import BundleRunner, register_bundle
from serving.bundles.offline import offline_test
from serving.bundles.offline_metrics import OfflineError
from serving.bundles.tensors import TensorError
from serving.registry import Registry
from serving.servable import BundleCandidate
from tests.support.text_bundles import TEXT, onnx_echo_bundle


def _texts(*values: object) -> np.ndarray:
    out = np.empty((len(values), 1), dtype=object)
    out[:, 0] = values
    return out


def test_the_model_receives_the_text_not_its_python_repr(tmp_path: Path) -> None:
    with BundleRunner.open(onnx_echo_bundle(tmp_path, output=TEXT)) as runner:
        echoed = runner.predict({"text": _texts(b"hello", "h\u00e9llo".encode(), "plain")})
    assert echoed["output"].ravel().tolist() == ["hello", "h\u00e9llo", "plain"]


def test_a_label_bundle_answers_its_class(tmp_path: Path) -> None:
    with BundleRunner.open(onnx_echo_bundle(tmp_path)) as runner:
        answer = BundleCandidate(runner).predict({"text": _texts("h\u00e9llo".encode())})
    assert answer.output == "h\u00e9llo"


def test_bytes_that_are_not_utf8_are_the_callers_400_naming_the_input(tmp_path: Path) -> None:
    with BundleRunner.open(onnx_echo_bundle(tmp_path)) as runner, \
            pytest.raises(TensorError, match=r"^input 'text' holds a value that is not UTF-8 "
                                             r"text \(item 0, byte 2\); this candidate's model "
                                             r"takes text") as info:
        BundleCandidate(runner).predict({"text": _texts(b"ab\xff")})
    assert info.value.status == 400


def test_the_offline_test_scores_the_text_the_model_received(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    register_bundle(registry, models, onnx_echo_bundle(tmp_path))
    dataset = tmp_path / "set.jsonl"
    dataset.write_text("".join(json.dumps({"inputs": {"text": [value]}, "label": value}) + "\n"
                               for value in ("hello", "h\u00e9llo")))
    assert offline_test(registry, "echo", dataset)["overall"]["accuracy"] == 1.0


def test_the_offline_test_refuses_a_line_that_is_not_utf8(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    """The dataset's to fix, named by file and line before the model runs once: it was reported
    as "the candidate failed" when the model reached it."""
    register_bundle(registry, models, onnx_echo_bundle(tmp_path))
    (tmp_path / "good.txt").write_text("hello")
    (tmp_path / "bad.txt").write_bytes(b"h\xe9llo")  # Latin-1, not UTF-8
    dataset = tmp_path / "set.jsonl"
    dataset.write_text("".join(json.dumps({"inputs": {"text": {"file": name}},
                                           "label": "hello"}) + "\n"
                               for name in ("good.txt", "bad.txt")))
    with pytest.raises(OfflineError) as info:
        offline_test(registry, "echo", dataset)
    assert info.value.message == (
        "set.jsonl line 2: input 'text' (file 'bad.txt') holds a value that is not UTF-8 text "
        "(item 0, byte 1); this candidate's model takes text: save the file as UTF-8 text")
    assert info.value.status == 400
    assert registry.get("echo").offline_results == {}


def test_the_offline_test_refuses_a_line_whose_text_holds_a_nul(
        registry: Registry, models: Path, tmp_path: Path) -> None:
    """Serving refuses such text with a 400 (a NUL echoed by the model was the candidate's
    failure): the offline test names the dataset's line as for bytes that are not UTF-8."""
    register_bundle(registry, models, onnx_echo_bundle(tmp_path, output=TEXT))
    dataset = tmp_path / "set.jsonl"
    dataset.write_text("".join(json.dumps({"inputs": {"text": [value]}, "label": "hello"}) + "\n"
                               for value in ("hello", "a\0b")))
    with pytest.raises(OfflineError) as info:
        offline_test(registry, "echo", dataset)
    assert info.value.message == ("set.jsonl line 2: input 'text' holds a NUL (\\u0000) "
                                  "character (item 0), which no text abvoc keeps holds: send "
                                  "the text without it")
    assert registry.get("echo").offline_results == {}


def test_a_text_input_holding_a_nul_is_the_callers_400(tmp_path: Path) -> None:
    with BundleRunner.open(onnx_echo_bundle(tmp_path, output=TEXT)) as runner, \
            pytest.raises(TensorError, match=r"^input 'text' holds a NUL") as info:
        runner.predict({"text": _texts(b"a\0b")})
    assert info.value.status == 400
