"""Candidates that take one BYTES input `text` of shape [-1, 1]: a local bundle whose ONNX model
echoes it (an Identity on tensor(string)) and a [remote] one, for the tests of how text reaches
a model."""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper

SIGNATURE = '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1, 1]\n'
LABEL = '[output]\ntype = "label"\nclasses = ["hello", "héllo"]\n'
TEXT = '[output]\ntype = "text"\n'


def echo_model() -> bytes:
    """An ONNX model whose string output is its string input, as onnxruntime received it."""
    node = helper.make_node("Identity", ["text"], ["output"])
    graph = helper.make_graph(
        [node], "echo", [helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("output", TensorProto.STRING, [None, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def onnx_echo_bundle(root: Path, name: str = "echo", output: str = LABEL) -> Path:
    """A local bundle of the echo model (a label among "hello" and "héllo" by default)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(echo_model())
    (folder / "candidate.toml").write_text(
        f'name = "{name}"\nversion = "1"\nbackend = "onnxruntime"\n{SIGNATURE}{output}'
        '[[stages]]\nname = "echo"\nkind = "onnx"\npath = "model.onnx"\n')
    return folder


def remote_text_bundle(root: Path, name: str, url: str, model: str = "echo") -> Path:
    """A [remote] candidate speaking V2 JSON that answers text (what its model received)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "candidate.toml").write_text(
        f'name = "{name}"\nversion = "1"\n{SIGNATURE}{TEXT}'
        f'[remote]\nurl = "{url}"\nmodel = "{model}"\ntimeout_ms = 10000\n')
    return folder
