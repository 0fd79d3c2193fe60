"""Serving backends behind one runtime interface: torch, ONNX Runtime, TensorRT.

    backend = get_backend("onnxruntime", BackendSettings(max_batch_size=16, max_batch_time_ms=2))
    backend.load(pipeline.networks(), cache_dir)
    logits = backend.run("recognizer", crops)
    backend.unload()

Backend modules are imported on first use, so a host without TensorRT never imports it.
"""

from __future__ import annotations

import importlib

from serving.backends.base import (
    Backend,
    BackendError,
    BackendNotReady,
    BackendSettings,
    BackendUnavailable,
    BadBatch,
    Networks,
    UnknownNetwork,
)

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "BackendNotReady",
    "BackendSettings",
    "BackendUnavailable",
    "BadBatch",
    "Networks",
    "UnknownBackend",
    "UnknownNetwork",
    "backend_class",
    "get_backend",
    "unavailable_reason",
]

_REGISTRY = {
    "torch": ("serving.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("serving.backends.onnx_backend", "OnnxBackend"),
    "tensorrt": ("serving.backends.tensorrt_backend", "TensorRTBackend"),
}
_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt", "pytorch": "torch"}
BACKEND_NAMES = tuple(_REGISTRY)


class UnknownBackend(BackendError):
    """A candidate names a serving method abvoc does not have."""

    status = 400


def _canonical(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    return key


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered under `name` (or an alias such as "onnx", "trt")."""
    module_name, class_name = _REGISTRY[_canonical(name)]
    return getattr(importlib.import_module(module_name), class_name)


def get_backend(name: str, settings: BackendSettings | None = None) -> Backend:
    """A new, not yet loaded backend of that kind built from `settings`."""
    return backend_class(name)(settings)


def unavailable_reason(name: str) -> str | None:
    """Why backend `name` cannot run on this host, or None when it can."""
    key = _canonical(name)
    if key == "tensorrt":
        from serving.backends.tensorrt_backend import tensorrt_unavailable_reason

        return tensorrt_unavailable_reason()
    return None
