"""scripts/install-python.sh decides when to (re)install abvoc into the shared environment: one
editable install per environment, so serving from one clone after testing another must reinstall
(it once left `abvoc` failing with "No module named 'app'"), and a reused one must not."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP_HASH = hashlib.sha256(b"".join(
    (REPO / f).read_bytes() for f in ("setup.cfg", "setup.py", "pyproject.toml"))).hexdigest()[:16]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A stand-in environment: its python records pip and build calls and runs everything else
    (the script's import check) with the real interpreter."""
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text(f"""#!/bin/sh
case "$1 $2" in
  "-m pip"|"setup.py --quiet"|"-m workloads.ocr.ort_ops") echo "$*" >> "{tmp_path}/calls"; exit 0;;
esac
exec "{sys.executable}" "$@"
""")
    python.chmod(0o755)
    return root


def install(venv: Path, extras: str, pythonpath: Path = REPO) -> list[str]:
    """Runs the script; returns the pip calls it made."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "install-python.sh"), extras],
                          env={**os.environ, "ABVOC_VENV": str(venv),
                               "PYTHONPATH": str(pythonpath)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = venv.parent / "calls"
    lines = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    assert any("build_ext" in line for line in lines)  # the native op is checked every time
    return [line for line in lines if line.startswith("-m pip")]


def stamp(venv: Path, tree: Path, extras: str) -> None:
    (venv / ".abvoc-installed").write_text(f"{SETUP_HASH} {tree}\n{extras}\n")


def test_a_matching_install_is_reused(venv: Path) -> None:
    stamp(venv, REPO, "bench test")
    assert install(venv, "test") == []
    assert install(venv, "") == []  # the base is part of every install


def test_another_work_tree_or_new_setup_files_reinstall(venv: Path, tmp_path: Path) -> None:
    stamp(venv, tmp_path / "another-clone", "test")
    assert install(venv, "") == [f"-m pip install --progress-bar off -e {REPO}"]
    assert (venv / ".abvoc-installed").read_text() == f"{SETUP_HASH} {REPO}\n\n"
    (venv / ".abvoc-installed").write_text(f"0123456789abcdef {REPO}\n\n")
    assert install(venv, "test") == [f"-m pip install --progress-bar off -e {REPO}[test]"]


def test_a_new_extra_is_added_to_those_installed(venv: Path) -> None:
    stamp(venv, REPO, "test")
    assert install(venv, "bench") == [f"-m pip install --progress-bar off -e {REPO}[bench,test]"]
    assert (venv / ".abvoc-installed").read_text().splitlines()[1] == "bench test"
    assert install(venv, "test") == []


def test_an_environment_mapped_to_another_tree_reinstalls(venv: Path, tmp_path: Path) -> None:
    """The stamp says this tree, but `app` imports from elsewhere (another clone installed
    itself without the script): the entry point would run the wrong code, or none."""
    (tmp_path / "elsewhere" / "app").mkdir(parents=True)
    (tmp_path / "elsewhere" / "app" / "__init__.py").write_text("")
    stamp(venv, REPO, "")
    assert install(venv, "", pythonpath=tmp_path / "elsewhere") == [
        f"-m pip install --progress-bar off -e {REPO}"]
