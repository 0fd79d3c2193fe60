"""The op shares torch's C++ runtime even where the compiler would link a private static copy.

A GPU image's compiler wrapper linked libstdc++ statically into the op, and the op's first error
message crashed the process; `torch_ops.load` now links the shared runtime and checks it did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workloads.ocr import torch_ops

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="no g++ here: the op cannot be built")
SOURCE = ("#include <sstream>\n"
          "std::string f(long x) { std::ostringstream o; o << x; return o.str(); }\n")


def static_runtime_compiler(folder: Path) -> Path:
    """A CXX like the one seen: g++ with -static-libstdc++ added to every command."""
    wrapper = folder / "g++"
    wrapper.write_text(f'#!/bin/sh\nexec {GXX} "$@" -static-libstdc++\n')
    wrapper.chmod(0o755)
    return wrapper


def test_a_library_with_a_private_static_cxx_runtime_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.cpp").write_text(SOURCE)
    shared, private = tmp_path / "shared.so", tmp_path / "private.so"
    for out, extra in ((shared, []), (private, ["-static-libstdc++"])):
        subprocess.run([GXX, "-shared", "-fPIC", str(tmp_path / "s.cpp"), "-o", str(out), *extra],
                       check=True)
    torch_ops.check_shared_runtime(shared)
    with pytest.raises(RuntimeError, match=r"links the C\+\+ runtime statically .*CXX="):
        torch_ops.check_shared_runtime(private)


def test_the_op_links_the_shared_runtime_where_the_compiler_would_not(tmp_path: Path) -> None:
    env = {**os.environ, "CXX": str(static_runtime_compiler(tmp_path)),
           "ABVOC_TORCH_EXTENSIONS": str(tmp_path / "ext")}
    script = (
        "import torch\n"
        "from workloads.ocr import torch_ops\n"
        "try:\n"
        "    torch_ops.connected_components(torch.zeros(3, 4))\n"
        "except RuntimeError as e:\n"
        "    print('refused:', str(e).splitlines()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: connected_components: mask must be bool or uint8, got Float" in done.stdout
    built = list((tmp_path / "ext").glob("*/*.so"))
    assert len(built) == 1
    assert torch_ops.SHARED_RUNTIME.encode() in built[0].read_bytes()
