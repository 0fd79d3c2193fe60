"""The TensorRT backend: an engine per network, built from its ONNX export, on a CUDA GPU.

Engines are built with the TensorRT Python API (``trt.Builder``, a network parsed by
``trt.OnnxParser``, a builder config with one optimisation profile covering batch sizes
1..``max_engine_batch``) and serialized to ``cache_dir/tensorrt``; the file name carries the
weights hash, the GPU name and the TensorRT version, because an engine runs only on the GPU model
and TensorRT release it was built for. Buffers are torch CUDA tensors, so no pycuda is needed.

This backend is used only where ``tensorrt`` imports and torch sees a CUDA GPU; elsewhere
:meth:`load` raises :class:`BackendUnavailable` with the reason. It is never emulated.
"""

from __future__ import annotations

import importlib
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from serving.backends.base import (
    Backend,
    BackendError,
    BackendNotReady,
    BackendSettings,
    BackendUnavailable,
    BadBatch,
    Networks,
)
from serving.backends.onnx_backend import INPUT_NAME, OUTPUT_NAME, cached_onnx, weights_digest

__all__ = ["TensorRTBackend", "build_engine", "run_engine", "tensorrt_unavailable_reason",
           "torch_dtype"]


def _import_tensorrt() -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module("tensorrt"), None
    except Exception as exc:  # noqa: BLE001 - any import failure means "not here"
        return None, f"tensorrt not importable ({type(exc).__name__}: {exc})"


def tensorrt_unavailable_reason() -> str | None:
    """Why the TensorRT backend cannot run on this host, or None when it can."""
    prefix = "TensorRT backend needs the tensorrt package and a CUDA GPU: "
    _, problem = _import_tensorrt()
    if problem is not None:
        return prefix + problem
    if not torch.cuda.is_available():
        return prefix + "torch sees no CUDA GPU"
    return None


def torch_dtype(trt: ModuleType, dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT tensor type."""
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    try:
        return table[dtype]
    except KeyError:
        raise BackendError(f"TensorRT tensor type {dtype} has no torch equivalent") from None


@dataclass
class _Engine:
    """One deserialized engine, its execution context and the lock that serializes its use."""

    engine: Any
    context: Any
    input_dtype: torch.dtype
    output_dtype: torch.dtype
    max_batch: int
    lock: threading.Lock


class TensorRTBackend(Backend):
    """TensorRT engines on one CUDA GPU; each engine's context is used by one thread at a time."""

    name = "tensorrt"

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        self._engines: dict[str, _Engine] = {}
        self._scratch: Path | None = None
        self._device = torch.device("cuda")
        self.engine_files: dict[str, Path] = {}

    def _load(self, networks: Networks, cache_dir: Path | None) -> None:
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(reason)
        trt, _ = _import_tensorrt()
        assert trt is not None
        device = self.settings.torch_device()
        if device.type != "cuda":
            raise BackendUnavailable(
                f"TensorRT backend runs on a CUDA GPU, but settings ask for device {device}"
            )
        if cache_dir is None:
            self._scratch = cache_dir = Path(tempfile.mkdtemp(prefix="abvoc-trt-"))
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(device)).strip("-")
        engines, files = {}, {}
        with torch.cuda.device(device):
            for name, (module, example) in networks.items():
                onnx_file = cached_onnx(name, module, example, cache_dir, self.settings.opset)
                digest = weights_digest(module, example, self.settings.opset)
                precision = "fp16" if self.settings.fp16 else "fp32"
                files[name] = (
                    cache_dir
                    / "tensorrt"
                    / f"{name}-{digest}-{gpu}-trt{trt.__version__}-{precision}"
                    f"-b{self.settings.max_engine_batch}.engine"
                )
                if not files[name].exists():
                    self._build(trt, logger, name, onnx_file, example, files[name])
                engine = runtime.deserialize_cuda_engine(files[name].read_bytes())
                if engine is None:
                    raise BackendError(f"TensorRT could not deserialize the engine of {name!r}")
                engines[name] = _Engine(
                    engine=engine,
                    context=engine.create_execution_context(),
                    input_dtype=torch_dtype(trt, engine.get_tensor_dtype(INPUT_NAME)),
                    output_dtype=torch_dtype(trt, engine.get_tensor_dtype(OUTPUT_NAME)),
                    max_batch=self.settings.max_engine_batch,
                    lock=threading.Lock(),
                )
        self._device, self._engines, self.engine_files = device, engines, files

    def _build(self, trt: ModuleType, logger: Any, name: str, onnx_file: Path,
               example: np.ndarray, target: Path) -> None:
        """Build a serialized engine for batch 1..max from the ONNX file, write it atomically."""
        item = tuple(int(d) for d in example.shape[1:])
        top = self.settings.max_engine_batch
        usual = max(1, min(top, self.settings.max_batch_size))
        serialized = build_engine(
            trt, logger, onnx_file.read_bytes(),
            {INPUT_NAME: ((1, *item), (usual, *item), (top, *item))},
            f"the ONNX export of {name!r}", self.settings.workspace_bytes, self.settings.fp16)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(serialized)
        tmp.replace(target)

    def _infer(self, name: str, batch: np.ndarray) -> np.ndarray:
        entry = self._engines.get(name)
        if entry is None:
            raise BackendNotReady(f"tensorrt backend has no loaded network {name!r}")
        outputs = [
            self._execute(entry, batch[start : start + entry.max_batch])
            for start in range(0, len(batch), entry.max_batch)
        ]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _execute(self, entry: _Engine, chunk: np.ndarray) -> np.ndarray:
        with entry.lock, torch.cuda.device(self._device):
            source = torch.from_numpy(np.array(chunk, order="C"))
            inputs = source.to(self._device, entry.input_dtype).contiguous()
            output = run_engine(entry.context, {INPUT_NAME: inputs},
                                {OUTPUT_NAME: entry.output_dtype}, self._device)[OUTPUT_NAME]
            if output.dtype in (torch.float16, torch.bfloat16):
                output = output.float()
            return output.cpu().numpy()

    def _unload(self) -> None:
        self._engines = {}
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        torch.cuda.empty_cache()


Shape = tuple[int, ...]


def build_engine(trt: ModuleType, logger: Any, onnx: bytes,
                 profile_shapes: dict[str, tuple[Shape, Shape, Shape]], what: str,
                 workspace_bytes: int | None = None, fp16: bool = False) -> bytes:
    """A serialized engine of an ONNX model with one optimisation profile, each named input's
    (smallest, usual, largest) shape; `what` names the model in errors."""
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {what}: {errors}")
    config = builder.create_builder_config()
    if workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (smallest, usual, largest) in profile_shapes.items():
        profile.set_shape(name, smallest, usual, largest)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT could not build an engine of {what} (see its log)")
    return bytes(serialized)


def run_engine(context: Any, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.dtype],
               device: torch.device) -> dict[str, torch.Tensor]:
    """One run of an engine's execution context: the named CUDA inputs in (contiguous, of the
    engine's dtypes), the named outputs back as new CUDA tensors. The caller holds the
    context's lock (a context serves one run at a time) and has `device` current."""
    for name, tensor in inputs.items():
        if not context.set_input_shape(name, tuple(tensor.shape)):
            raise BadBatch(f"TensorRT refused shape {list(tensor.shape)} for input {name!r}: "
                           "it is outside the engine's optimisation profile")
        context.set_tensor_address(name, tensor.data_ptr())
    results = {}
    for name, dtype in outputs.items():
        shape = tuple(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise BackendError(f"TensorRT output {name!r} has a data-dependent shape "
                               f"{list(shape)}, which abvoc cannot allocate before the run")
        results[name] = torch.empty(shape, dtype=dtype, device=device)
        context.set_tensor_address(name, results[name].data_ptr())
    stream = torch.cuda.current_stream(device)
    if not context.execute_async_v3(stream.cuda_stream):
        raise BackendError("TensorRT execution failed (see its log)")
    stream.synchronize()
    return results
