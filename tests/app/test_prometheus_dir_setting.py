"""A PROMETHEUS_MULTIPROC_DIR that is no folder (mistyped, or not made yet) given to `abvoc
serve`, `worker` or `relay`, as the README has operators export it: the server's workers
crashed with a FileNotFoundError traceback as they started, and the worker's loop died on its
first sample and was restarted for ever. It is refused at start, in one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.test_http_server import REPO
from tests.support.ports import free_port


@pytest.mark.parametrize("command", [["serve", "--workers", "2"], ["serve"], ["worker"],
                                     ["relay"]], ids=["serve-2", "serve-1", "worker", "relay"])
def test_a_metrics_folder_that_is_not_there_is_refused_in_one_line(
        tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no-such-folder"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABVOC_", "PROMETHEUS_"))}
    env.update(ABVOC_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO),
               PROMETHEUS_MULTIPROC_DIR=str(missing))
    if command[0] == "serve":
        command = [*command, "--port", str(free_port())]
    done = subprocess.run([sys.executable, "-m", "app", *command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"PROMETHEUS_MULTIPROC_DIR='{missing}' is not a folder" in done.stderr


def test_the_command_line_imports_no_prometheus_client_before_up_sets_its_folder() -> None:
    """prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, as it is imported: a module the
    CLI imports at start that imports it (retention through core.parking did) kept `abvoc up`'s
    own counters, a part's restarts, out of /metrics."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "app", "up", "--help"],
                          capture_output=True, text=True, timeout=120, check=True, cwd=REPO)
    assert "Run everything on one machine" in done.stdout  # `up`'s module is loaded
    assert "prometheus_client" not in done.stderr
