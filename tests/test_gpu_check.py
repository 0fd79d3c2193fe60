"""scripts/gpu-check on a machine that cannot run it: it stops at once, exit 2, naming what is
missing, before installing or building anything. The CUDA toolkit and the GPU are stood in for
by small scripts first on PATH, so the test means the same on a host that has them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu-check"
NVCC_OK = "#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n"
FAILS = "#!/bin/sh\necho 'no driver' >&2\nexit 9\n"
NO_GPU = "#!/bin/sh\necho 'No devices were found'\n"


def run(tmp_path: Path, nvcc: str, smi: str) -> tuple[subprocess.CompletedProcess, float]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("nvcc", nvcc), ("nvidia-smi", smi)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "CUDA_HOME": str(tmp_path / "no-cuda"),
           "ABVOC_VENV": str(tmp_path / "no-venv")}  # were it used, nothing would be found
    start = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    return done, time.monotonic() - start


@pytest.mark.parametrize(("nvcc", "smi", "missing"), [
    (FAILS, FAILS, ["nvcc (the CUDA toolkit", "an NVIDIA GPU (nvidia-smi lists none)"]),
    (NVCC_OK, NO_GPU, ["an NVIDIA GPU (nvidia-smi lists none)"]),
    (FAILS, "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\n", ["nvcc (the CUDA toolkit"]),
])
def test_without_a_gpu_or_nvcc_it_stops_at_once_and_says_what_is_missing(
        tmp_path: Path, nvcc: str, smi: str, missing: list[str]) -> None:
    done, seconds = run(tmp_path, nvcc, smi)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot run the GPU checks on this machine; missing:" in done.stderr
    for item in missing:
        assert item in done.stderr
    assert done.stderr.count("  - ") == len(missing)
    assert "nothing was built or run" in done.stderr
    assert "install-python" not in done.stdout + done.stderr  # nothing was installed
    assert not (tmp_path / "no-venv").exists()
    assert seconds < 10


def test_a_given_interpreter_is_used_as_it_is_and_nothing_is_installed(tmp_path: Path) -> None:
    """ABVOC_GPU_CHECK_PYTHON (a GPU machine with no package registry): install-python.sh is
    not run, and the interpreter named is the one asked whether the CUDA op can be built."""
    calls = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$PYTHONPATH" >> {calls}\n'
                      'echo "no CUDA GPU visible to torch"\n')
    python.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("nvcc", NVCC_OK),
                       ("nvidia-smi", "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "CUDA_HOME": str(tmp_path / "no-cuda"), "ABVOC_VENV": str(tmp_path / "no-venv"),
           "ABVOC_GPU_CHECK_PYTHON": str(python), "PYTHONPATH": "/site"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"python: {python} as it is" in done.stdout
    assert "nothing installed" in done.stdout
    assert "cannot run the GPU checks: no CUDA GPU visible to torch" in done.stderr
    # `python -V` for the log, then the question, asked with the repository importable
    assert calls.read_text().splitlines()[-1] == f"{SCRIPT.parents[1]}:/site"
    assert not (tmp_path / "no-venv").exists()
