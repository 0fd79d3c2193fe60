"""Candidates that take one BYTES input `text` of shape [-1, 1]: a local bundle whose ONNX model
echoes it (an Identity on tensor(string)) and a [remote] one, for the tests of how text reaches
a model."""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto

from tests.support.onnx_identity import identity_model

SIGNATURE = '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1, 1]\n'
LABEL = '[output]\ntype = "label"\nclasses = ["hello", "héllo"]\n'
TEXT = '[output]\ntype = "text"\n'


def onnx_echo_bundle(root: Path, name: str = "echo", output: str = LABEL) -> Path:
    """A local bundle of the echo model (a label among "hello" and "héllo" by default)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(
        identity_model(TensorProto.STRING, 1, ("text", "output")))
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
