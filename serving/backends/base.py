"""The one runtime interface every serving backend implements, and the settings it is built from.

A backend runs named numpy-in/numpy-out networks. A candidate pipeline hands it its neural stages
as ``{name: (torch module, example batch)}``; the backend prepares them once in :meth:`load`
(copy to a device, export to ONNX, build a TensorRT engine) and then answers :meth:`run` calls
from many request threads. Subclasses implement ``_load``, ``_infer`` and ``_unload``; the base
class owns the lifecycle, input checks and the dynamic batcher, so every backend behaves the same
to its callers.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import AbvocError, ConfigError
from serving.batching import DynamicBatcher

if TYPE_CHECKING:  # torch is imported where a backend needs it: an ONNX-only API process never
    import torch  # loads it (about 600 MB per serving process, and seconds of start-up)

__all__ = [
    "Backend",
    "BackendError",
    "BackendNotReady",
    "BackendSettings",
    "BackendUnavailable",
    "BadBatch",
    "NetworkSpec",
    "Networks",
    "UnknownNetwork",
]

Networks = Mapping[str, tuple["torch.nn.Module", np.ndarray]]
"""What a pipeline hands a backend: each neural stage's module and an example input batch."""


class BackendError(AbvocError):
    """A backend failed in a way the caller cannot fix by changing its input."""

    status = 500


class BackendUnavailable(BackendError):
    """This backend cannot run on this host (missing package or GPU); the message says which."""

    status = 503


class BackendNotReady(BackendError):
    """`run` was called before `load` or after `unload`."""

    status = 503


class UnknownNetwork(BackendError):
    """`run` named a network that was not loaded."""

    status = 404


class BadBatch(BackendError):
    """The input batch has the wrong rank, shape or dtype for the named network."""

    status = 400


@dataclass(frozen=True)
class BackendSettings:
    """How one candidate's backend runs; frozen, passed to the constructor, one per candidate.

    ``max_batch_size > 1`` switches dynamic batching on: concurrent `run` calls for one network
    are merged into batches of up to that many items, waiting at most ``max_batch_time_ms`` after
    the first request of a batch arrived (0 batches only what is already queued);
    ``batch_workers`` batches may run at once per network.
    ``max_engine_batch`` bounds the batch a compiled engine (TensorRT profile) accepts; bigger
    batches are split into chunks of that size.
    """

    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    max_batch_size: int = 1
    max_batch_time_ms: float = 0.0
    batch_workers: int = 1
    cache_dir: Path | None = None
    max_engine_batch: int = 64
    fp16: bool = False
    workspace_bytes: int = 1 << 30
    intra_op_threads: int | None = None
    opset: int = 17

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_batch_time_ms < 0:
            raise ConfigError(
                f"max_batch_time_ms must be zero or positive, got {self.max_batch_time_ms}"
            )
        if self.batch_workers < 1:
            raise ConfigError(f"batch_workers must be at least 1, got {self.batch_workers}")
        if self.max_engine_batch < 1:
            raise ConfigError(f"max_engine_batch must be at least 1, got {self.max_engine_batch}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ConfigError("intra_op_threads must be a positive integer or unset")

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1

    def torch_device(self) -> torch.device:
        """The device named by ``device``; "auto" picks CUDA where present."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"device {self.device!r} was asked for but torch sees no CUDA GPU on this host"
            )
        return torch.device(self.device)


@dataclass(frozen=True)
class NetworkSpec:
    """The input a loaded network accepts: any batch size, the example's other dims and dtype."""

    name: str
    item_shape: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def from_example(cls, name: str, example: np.ndarray) -> NetworkSpec:
        if not isinstance(example, np.ndarray) or example.ndim < 1 or len(example) < 1:
            raise BackendError(
                f"network {name!r}: the example must be a numpy batch with at least one item"
            )
        return cls(name, tuple(example.shape[1:]), example.dtype)

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.item_shape)
        return f"(N, {dims}) {self.dtype}" if dims else f"(N,) {self.dtype}"

    def check(self, batch: np.ndarray) -> np.ndarray:
        """The batch as a contiguous array of the network's dtype, or a BadBatch that says why."""
        if not isinstance(batch, np.ndarray):
            raise BadBatch(f"network {self.name!r} takes a numpy array, got {type(batch).__name__}")
        if batch.shape[1:] != self.item_shape or batch.ndim != len(self.item_shape) + 1:
            raise BadBatch(
                f"network {self.name!r} expects {self.describe()}, got shape {batch.shape}"
            )
        if len(batch) == 0:
            raise BadBatch(f"network {self.name!r} got an empty batch")
        if batch.dtype != self.dtype:
            if not np.can_cast(batch.dtype, self.dtype, casting="same_kind"):
                raise BadBatch(f"network {self.name!r} expects {self.dtype}, got {batch.dtype}")
            batch = batch.astype(self.dtype)
        return np.ascontiguousarray(batch)


class Backend(abc.ABC):
    """Load named networks once, then run numpy batches through them from any thread."""

    name: str = "abstract"

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings if settings is not None else BackendSettings()
        self._specs: dict[str, NetworkSpec] = {}
        self._batchers: dict[str, DynamicBatcher] = {}
        self._ready = False
        self._lifecycle = threading.Lock()

    @property
    def ready(self) -> bool:
        """True between a successful `load` and `unload`."""
        return self._ready

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, name: str) -> NetworkSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise UnknownNetwork(
                f"{self.name} backend has no network {name!r} (loaded: {known})"
            ) from None

    def load(self, networks: Networks, cache_dir: str | Path | None = None) -> None:
        """Prepare every network; with batching on, install one batcher per network."""
        with self._lifecycle:
            if self._ready:
                raise BackendError(f"{self.name} backend is already loaded; unload it first")
            if not networks:
                raise BackendError(f"{self.name} backend was given no networks to load")
            specs = {name: NetworkSpec.from_example(name, ex) for name, (_, ex) in networks.items()}
            cache = Path(cache_dir) if cache_dir is not None else self.settings.cache_dir
            self._load(networks, cache)
            self._specs = specs
            if self.settings.batching:
                for name in specs:
                    self._batchers[name] = DynamicBatcher(
                        self._batch_fn(name),
                        max_batch_size=self.settings.max_batch_size,
                        max_batch_time_ms=self.settings.max_batch_time_ms,
                        workers=self.settings.batch_workers,
                        name=f"{self.name}:{name}",
                    )
            self._ready = True

    def _batch_fn(self, name: str):
        return lambda batch: self._infer(name, batch)

    def run(self, name: str, batch: np.ndarray) -> np.ndarray:
        """The network's output for `batch` (first axis = items); thread-safe."""
        if not self._ready:
            raise BackendNotReady(f"{self.name} backend is not loaded; call load() first")
        checked = self.spec(name).check(batch)
        batcher = self._batchers.get(name)
        if batcher is not None:
            return batcher.submit(checked)
        return self._infer(name, checked)

    def unload(self) -> None:
        """Finish queued requests, then free the networks; `ready` turns false first."""
        with self._lifecycle:
            if not self._ready:
                return
            self._ready = False
            for batcher in self._batchers.values():
                batcher.close()
            self._batchers.clear()
            self._specs = {}
            self._unload()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    @abc.abstractmethod
    def _load(self, networks: Networks, cache_dir: Path | None) -> None:
        """Prepare each network for `_infer`; raise BackendUnavailable where this host cannot."""

    @abc.abstractmethod
    def _infer(self, name: str, batch: np.ndarray) -> np.ndarray:
        """Run one checked batch through one network; must be safe to call from many threads."""

    @abc.abstractmethod
    def _unload(self) -> None:
        """Drop every reference to the prepared networks."""


def single_output(name: str, output: object) -> torch.Tensor:
    """The one tensor a served network returns; tuples or dicts are a load-time error."""
    import torch

    if not isinstance(output, torch.Tensor):
        raise BackendError(
            f"network {name!r} must return one tensor to be served, got {type(output).__name__}"
        )
    return output
