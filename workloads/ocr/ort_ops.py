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
import tempfile
from pathlib import Path

import onnxruntime as ort

CRATE = Path(__file__).resolve().parents[2] / "csrc" / "ort"
LIBRARY = Path(__file__).with_name("_ccl_ort.so")
_BUILT_NAME = "libabvoc_ccl_ort.so"
NO_CARGO = ("cargo (Rust) is not on PATH, so the ONNX Runtime op library (csrc/ort) cannot be "
            "built: install Rust (https://rustup.rs), then run scripts/install-python.sh")


def target_dir() -> Path:
    """Cargo's build folder: inside the crate (gitignored) unless ABVOC_CARGO_TARGET says."""
    return Path(os.environ.get("ABVOC_CARGO_TARGET", CRATE / "target")).expanduser()


def unavailable() -> str | None:
    """Why the library cannot be built here, or None when it can (or is built already)."""
    if LIBRARY.is_file() or shutil.which("cargo") is not None:
        return None
    return NO_CARGO


def build() -> Path:
    """Compile csrc/ort with cargo (exact versions from Cargo.lock) and install it as LIBRARY."""
    cargo = shutil.which("cargo")
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
    """Session options (new ones, or those given) with the abvoc custom ops registered."""
    options = options if options is not None else ort.SessionOptions()
    options.register_custom_ops_library(str(library_path()))
    return options


if __name__ == "__main__":
    print(build())
