"""The csrc/ccl op registered in torch as `torch.ops.abvoc.connected_components`.

Compiled just in time on first use with torch's extension tools (ninja, the machine's g++) into
~/.cache/abvoc/torch_extensions, so the package build never needs torch. Where nvcc and a GPU
exist, the CUDA kernel of csrc/cuda is compiled in as the op's CUDA implementation. `load()`
also registers the ONNX symbolic, so `torch.onnx.export(..., dynamo=False)` writes the op as one
node `abvoc::ConnectedComponents` (domain "abvoc", version 1) with outputs labels and stats.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from workloads.ocr.components import ONNX_DOMAIN, ONNX_OP, ONNX_OPSET

CSRC = Path(__file__).resolve().parents[2] / "csrc"
# The op must use the C++ runtime torch uses, libstdc++.so.6, never a private static copy: some
# images' compiler wrappers link libstdc++ statically, and then the op's streams (every
# TORCH_CHECK message) crash the process (seen on an H200 host: a segfault refusing a float
# mask). Naming the shared library first makes the linker take its symbols from it.
SHARED_RUNTIME = "libstdc++.so.6"
_loaded = False


def build_dir() -> Path:
    root = os.environ.get("ABVOC_TORCH_EXTENSIONS", "~/.cache/abvoc/torch_extensions")
    return Path(root).expanduser()


def _symbolic(g, mask):  # type: ignore[no-untyped-def]
    """One custom-domain node; its two outputs are typed so onnx.checker accepts the graph."""
    labels, stats = g.op(f"{ONNX_DOMAIN}::{ONNX_OP}", mask, outputs=2)
    labels.setType(mask.type().with_dtype(torch.int32))
    stats.setType(mask.type().with_dtype(torch.int64).with_sizes([None, 5]))
    return labels, stats


def _fake(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shapes for torch.export / torch.compile: the component count is data-dependent."""
    n = torch.library.get_ctx().new_dynamic_size()
    return (torch.empty_like(mask, dtype=torch.int32),
            mask.new_empty((n, 5), dtype=torch.int64))


def cuda_unavailable() -> str | None:
    """Why the CUDA kernel (csrc/cuda) is not built here, or None when it is."""
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return "no CUDA toolkit (nvcc) on this machine"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    return None


def check_shared_runtime(library: Path) -> None:
    """Refuse a build that does not load libstdc++.so.6 (the name is in its dynamic section
    only when it does), saying which compiler to change, before a refusal can crash."""
    if SHARED_RUNTIME.encode() not in library.read_bytes():
        compiler = os.environ.get("CXX", "c++")
        raise RuntimeError(
            f"{library} links the C++ runtime statically (compiler {compiler!r}), which crashes "
            f"torch's error messages; build with a compiler that links {SHARED_RUNTIME} "
            f"(e.g. CXX=/usr/bin/g++) after removing {library.parent}")


def load(verbose: bool = False) -> None:
    """Build (once per machine) and register the op in this process; CUDA too where possible."""
    global _loaded
    if _loaded:
        return
    from torch.utils import cpp_extension

    name, sources = "abvoc_ccl_ops", [CSRC / "torch" / "ccl_op.cpp"]
    if cuda_unavailable() is None:
        name += "_cuda"
        sources += [CSRC / "cuda" / "ccl_cuda.cu", CSRC / "cuda" / "ccl_cuda_op.cpp"]
    out = build_dir() / name
    out.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(
        name=name,
        sources=[str(s) for s in sources],
        extra_include_paths=[str(CSRC / "ccl"), str(CSRC / "cuda")],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],
        extra_ldflags=[f"-l:{SHARED_RUNTIME}"],
        build_directory=str(out),
        is_python_module=False,
        verbose=verbose,
    )
    check_shared_runtime(out / f"{name}.so")
    torch.library.register_fake("abvoc::connected_components", _fake)
    torch.onnx.register_custom_op_symbolic(
        "abvoc::connected_components", _symbolic, ONNX_OPSET)
    _loaded = True


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (int32) and stats (n x 5 int64) of a 2-D bool/uint8 CPU mask."""
    load()
    return torch.ops.abvoc.connected_components(mask)
