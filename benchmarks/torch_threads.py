"""torch's intra-op threads switched per measured configuration (bench_serving.py)."""

from __future__ import annotations

from typing import Any


class TorchThreads:
    """Sets torch's intra-op threads per configuration, as ONNX Runtime sets them per session.

    torch keeps one intra-op pool per process, so the setting is switched before each
    measurement and restored afterwards; on other backends this does nothing.
    """

    def __init__(self, backend_name: str) -> None:
        self.torch: Any = None
        if backend_name == "torch":
            import torch

            self.torch = torch
            self.default = torch.get_num_threads()

    def use(self, threads: int | None) -> None:
        if self.torch is not None:
            self.torch.set_num_threads(threads or self.default)

    def restore(self) -> None:
        self.use(None)
