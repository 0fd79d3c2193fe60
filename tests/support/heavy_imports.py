"""Which heavy libraries a command line loads, run in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "dash", "onnxruntime")


def heavy_modules_after(*commands: list[str]) -> list[str]:
    """The heavy libraries imported once `abvoc` has run each of `commands` (e.g. ['--help'])."""
    code = ("import sys; from app.cli import main\n"
            f"for args in {[list(c) for c in commands]!r}:\n"
            "    try:\n"
            "        main(args, standalone_mode=False)\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(sorted(set({list(HEAVY)!r}) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return eval(out.splitlines()[-1])  # noqa: S307 - our own printed list of names
