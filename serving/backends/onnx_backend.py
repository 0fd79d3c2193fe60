"""The ONNX Runtime backend: each network exported once to ONNX, run on the CPU provider.

Export uses torch's TorchScript-based exporter (``dynamo=False``): it needs no package beyond
torch and onnx, and supports a dynamic batch axis through ``dynamic_axes``. Exported files are
cached under ``cache_dir/onnx`` by a content hash of the weights, architecture and input, so a
retrained candidate gets a new file and an unchanged one is never exported twice. The TensorRT
backend builds its engines from the same files.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from serving.backends.base import (
    Backend,
    BackendError,
    BackendNotReady,
    BackendSettings,
    Networks,
    single_output,
)
from serving.backends.ort_options import cpu_session_options

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxBackend", "export_onnx", "weights_digest"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"

# The two deprecation notices torch prints for every TorchScript-based export; nothing else is
# silenced, so a TracerWarning about a shape baked into the graph still fails loudly.
_EXPORT_NOTICES = (
    "You are using the legacy TorchScript-based ONNX export",
    "The feature will be removed",
)
_export_lock = threading.Lock()


def weights_digest(module: torch.nn.Module, example: np.ndarray, opset: int) -> str:
    """A short hash that changes whenever the exported graph could: weights, class, input, opset."""
    h = hashlib.sha256()
    cls = type(module)
    h.update(f"{cls.__module__}.{cls.__qualname__}|{example.shape[1:]}|{example.dtype}".encode())
    h.update(f"|opset{opset}|torch{torch.__version__}".encode())
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"|{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def export_onnx(
    name: str, module: torch.nn.Module, example: np.ndarray, path: Path, opset: int = 17
) -> Path:
    """Write the module as ONNX with a dynamic batch axis; atomic, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = copy.deepcopy(module).cpu().eval()
    sample = torch.from_numpy(np.array(example, order="C"))
    with torch.inference_mode():
        single_output(name, cpu(sample))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with _export_lock, warnings.catch_warnings():
            for notice in _EXPORT_NOTICES:
                warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
            torch.onnx.export(
                cpu,
                (sample,),
                tmp,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BackendError(f"network {name!r} could not be exported to ONNX: {exc}") from exc
    return path


def cached_onnx(
    name: str, module: torch.nn.Module, example: np.ndarray, cache_dir: Path, opset: int
) -> Path:
    """The network's ONNX file in the cache, exported on first use."""
    path = cache_dir / "onnx" / f"{name}-{weights_digest(module, example, opset)}.onnx"
    if not path.exists():
        export_onnx(name, module, example, path, opset)
    return path


class OnnxBackend(Backend):
    """ONNX Runtime sessions on the CPUExecutionProvider; `InferenceSession.run` is thread-safe."""

    name = "onnxruntime"

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._scratch: Path | None = None
        self.onnx_files: dict[str, Path] = {}

    def _load(self, networks: Networks, cache_dir: Path | None) -> None:
        if cache_dir is None:
            self._scratch = cache_dir = Path(tempfile.mkdtemp(prefix="abvoc-onnx-"))
        options = cpu_session_options(self.settings.intra_op_threads)
        sessions, files = {}, {}
        for name, (module, example) in networks.items():
            files[name] = cached_onnx(name, module, example, cache_dir, self.settings.opset)
            sessions[name] = ort.InferenceSession(
                str(files[name]), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self._sessions, self.onnx_files = sessions, files

    def _infer(self, name: str, batch: np.ndarray) -> np.ndarray:
        session = self._sessions.get(name)
        if session is None:
            raise BackendNotReady(f"onnxruntime backend has no loaded network {name!r}")
        return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def _unload(self) -> None:
        self._sessions = {}
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
