"""Build and load the TensorRT plugin of csrc/tensorrt (IPluginV3 over the csrc/cuda kernel).

Only where TensorRT (Python package and C++ headers), nvcc and a GPU all exist; `unavailable()`
says which is missing. The library is compiled with nvcc into ~/.cache/abvoc/torch_extensions
and registered with `IPluginRegistry.load_library`, which calls its exported `getCreators`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

CSRC = Path(__file__).resolve().parents[2] / "csrc"
PLUGIN_NAME, PLUGIN_VERSION = "ConnectedComponents", "1"
_HEADER_DIRS = ("/usr/include/x86_64-linux-gnu", "/usr/include", "/usr/local/tensorrt/include")


def header_dir() -> Path | None:
    roots = [Path(os.environ["TENSORRT_ROOT"]) / "include"] if "TENSORRT_ROOT" in os.environ else []
    return next((d for d in [*roots, *map(Path, _HEADER_DIRS)] if (d / "NvInfer.h").is_file()),
                None)


def nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    found = Path(home) / "bin" / "nvcc"
    return str(found) if found.is_file() else shutil.which("nvcc")


def unavailable() -> str | None:
    """Why the plugin cannot be built and run here, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt Python package does not import (pip install abvoc[tensorrt])"
    if header_dir() is None:
        return "TensorRT's C++ headers (NvInfer.h) not found; set TENSORRT_ROOT"
    if nvcc() is None:
        return "no CUDA toolkit (nvcc) on this machine"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU visible"
    return None


def build(out_dir: Path | None = None) -> Path:
    """Compile the plugin library once; return its path."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(f"cannot build the TensorRT plugin: {reason}")
    root = Path(os.environ.get("ABVOC_TORCH_EXTENSIONS", "~/.cache/abvoc/torch_extensions"))
    out_dir = out_dir or root.expanduser() / "tensorrt"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libabvoc_ccl_trt.so"
    sources = [CSRC / "tensorrt" / "ccl_plugin.cpp", CSRC / "cuda" / "ccl_cuda.cu"]
    newest = max(p.stat().st_mtime for p in [*sources, CSRC / "cuda" / "ccl_cuda.cuh"])
    if lib.is_file() and lib.stat().st_mtime >= newest:
        return lib
    # Interfaces only: the plugin calls no libnvinfer function, so it links just cudart.
    subprocess.run([nvcc(), "-shared", "-O3", "-std=c++17", "-Xcompiler", "-fPIC",
                    f"-I{header_dir()}", f"-I{CSRC / 'cuda'}", *map(str, sources),
                    "-o", str(lib)], check=True)
    return lib


def register() -> object:
    """Build if needed and register the creator in TensorRT's plugin registry; return it."""
    import tensorrt as trt

    registry = trt.get_plugin_registry()
    registry.load_library(str(build()))
    return registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, "")
