"""The torch backend: the pipeline's own modules, on CUDA where present, else on the CPU.

It is the reference the other backends are held against, and the one that needs nothing beyond
torch. Modules are deep-copied at load so moving them to a device never changes the caller's.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from serving.backends.base import (
    Backend,
    BackendNotReady,
    BackendSettings,
    Networks,
    single_output,
)

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """Eager torch inference under `torch.inference_mode`; thread-safe for concurrent `run`s."""

    name = "torch"

    def __init__(self, settings: BackendSettings | None = None) -> None:
        super().__init__(settings)
        self._modules: dict[str, torch.nn.Module] = {}
        self.device = torch.device("cpu")

    def _load(self, networks: Networks, cache_dir: Path | None) -> None:
        device = self.settings.torch_device()
        modules = {}
        for name, (module, example) in networks.items():
            copied = copy.deepcopy(module).to(device).eval()
            with torch.inference_mode():
                single_output(name, copied(as_tensor(example).to(device)))
            modules[name] = copied
        self.device = device
        self._modules = modules

    def _infer(self, name: str, batch: np.ndarray) -> np.ndarray:
        module = self._modules.get(name)
        if module is None:
            raise BackendNotReady(f"torch backend has no loaded network {name!r}")
        with torch.inference_mode():
            out = module(as_tensor(batch).to(self.device, non_blocking=True))
        return out.detach().cpu().numpy()

    def _unload(self) -> None:
        self._modules = {}
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing the array's memory where torch can; read-only arrays are copied."""
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return torch.from_numpy(array)
