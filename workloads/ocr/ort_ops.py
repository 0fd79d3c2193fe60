"""The csrc/ccl op as an ONNX Runtime custom-op library, and session options that load it.

csrc/ort is a Rust cdylib (registration glue over ort-sys's C API types) whose kernel is the
same C++ labelling as the CPython module and the torch op. `build()` compiles it with cargo
(incremental: a second call with no change in csrc/ort or csrc/ccl does no work) and copies it
next to this module as `_ccl_ort.so`; scripts/install-python.sh calls it. A model holding
`abvoc::ConnectedComponents` nodes, such as the torch op's ONNX export, then runs in ONNX
Runtime with `session_options()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import NodeProto, TensorProto, ValueInfoProto, helper

from workloads.ocr.components import ONNX_DOMAIN, ONNX_OP, ONNX_OPSET

CRATE = Path(__file__).resolve().parents[2] / "csrc" / "ort"
LIBRARY = Path(__file__).with_name("_ccl_ort.so")
_BUILT_NAME = "libabvoc_ccl_ort.so"
# Options the library is registered on: ORT refuses a session whose options carry the domain
# twice ("Domain already set in registry"), so a second registration is skipped.
_registered: weakref.WeakSet[ort.SessionOptions] = weakref.WeakSet()
NO_CARGO = ("cargo (Rust) is not on PATH nor in $CARGO_HOME/bin, so the ONNX Runtime op library "
            "(csrc/ort) cannot be built: install Rust (https://rustup.rs), then run "
            "scripts/install-python.sh")


def find_cargo() -> str | None:
    """cargo on PATH, else where rustup puts it (a shell that skipped rustup's profile)."""
    home = Path(os.environ.get("CARGO_HOME", "~/.cargo")).expanduser()
    fallback = home / "bin" / "cargo"
    return shutil.which("cargo") or (str(fallback) if fallback.is_file() else None)


def target_dir() -> Path:
    """Cargo's build folder: inside the crate (gitignored) unless ABVOC_CARGO_TARGET says."""
    return Path(os.environ.get("ABVOC_CARGO_TARGET", CRATE / "target")).expanduser()


def unavailable() -> str | None:
    """Why the library cannot be built here, or None when it can."""
    return NO_CARGO if find_cargo() is None else None


def build() -> Path:
    """Compile csrc/ort with cargo (exact versions from Cargo.lock) and install it as LIBRARY."""
    cargo = find_cargo()
    if cargo is None:
        raise RuntimeError(NO_CARGO)
    target = target_dir()
    done = subprocess.run(
        [cargo, "build", "--release", "--locked", "--quiet",
         "--manifest-path", str(CRATE / "Cargo.toml")],
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cargo could not build csrc/ort:\n{done.stderr.strip()}")
    built = target / "release" / _BUILT_NAME
    if not LIBRARY.is_file() or LIBRARY.read_bytes() != built.read_bytes():
        # A fresh file renamed into place: a process holding the old library keeps its copy.
        with tempfile.NamedTemporaryFile(dir=LIBRARY.parent, delete=False) as tmp:
            tmp.write(built.read_bytes())
        os.chmod(tmp.name, 0o755)
        os.replace(tmp.name, LIBRARY)
    return LIBRARY


def library_path() -> Path:
    """The built library; says how to build it when it is missing."""
    if not LIBRARY.is_file():
        reason = unavailable() or "run scripts/install-python.sh (or workloads.ocr.ort_ops.build())"
        raise FileNotFoundError(f"{LIBRARY.name} is not built: {reason}")
    return LIBRARY


def session_options(options: ort.SessionOptions | None = None) -> ort.SessionOptions:
    """Session options (new ones, or those given) with the abvoc custom ops registered once."""
    options = options if options is not None else ort.SessionOptions()
    if options not in _registered:
        options.register_custom_ops_library(str(library_path()))
        _registered.add(options)
    return options


def one_node_model(elem_type: int = TensorProto.BOOL,
                   dims: Sequence[str] = ("h", "w")) -> bytes:
    """One abvoc::ConnectedComponents node: mask -> (labels, stats), as torch_ops exports it."""
    node = helper.make_node(ONNX_OP, ["mask"], ["labels", "stats"], domain=ONNX_DOMAIN)
    return single_node_model(
        node,
        [helper.make_tensor_value_info("mask", elem_type, list(dims))],
        [helper.make_tensor_value_info("labels", TensorProto.INT32, list(dims)),
         helper.make_tensor_value_info("stats", TensorProto.INT64, [None, 5])])


def single_node_model(node: NodeProto, inputs: Sequence[ValueInfoProto],
                      outputs: Sequence[ValueInfoProto]) -> bytes:
    """A serialized graph of one node of the op library, with the opsets abvoc's graphs import
    (the standard one and abvoc's own domain)."""
    graph = helper.make_graph([node], node.op_type, list(inputs), list(outputs))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                    helper.make_opsetid(ONNX_DOMAIN, 1)])
    return model.SerializeToString()


class OrtLabeller:
    """Labels 2-D bool masks through ONNX Runtime: a one-node session over the library."""

    def __init__(self, threads: int = 1) -> None:
        options = session_options()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(one_node_model(), sess_options=options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, stats = self.session.run(None, {"mask": np.ascontiguousarray(mask, dtype=bool)})
        return labels, stats


if __name__ == "__main__":  # scripts/install-python.sh: build, or say why not (not an error)
    if find_cargo() is None:
        print(f"WARNING: {NO_CARGO}; its tests will skip", file=sys.stderr)
    else:
        print(f"built {build()}")
