"""`abvoc up` stopped while it trains the reference candidates on a fresh store: the training
process went on alone (SIGTERM or kill -9 of `up`: an orphan; SIGINT: `up` waited for it), and
the next `up`, finding no candidate registered yet, started a second training beside it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.app.test_serve_outage import _running, _serve, _until


def _trainer(up_pid: int) -> int | None:
    """The training process `up` spawned, once it runs (not multiprocessing's tracker)."""
    found = subprocess.run(["pgrep", "-P", str(up_pid), "-f", "spawn_main"],
                           capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT],
                         ids=["sigterm", "sigkill", "sigint"])
def test_the_training_stops_with_up(tmp_path: Path, sig: signal.Signals) -> None:
    # `up` started with SIGINT ignored, as a background job of a script is: it stops on it all
    # the same, as its parts' supervisor does (a CI run in the background saw it train on).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc, _port, log = _serve(tmp_path, "--workers", "1", command="up")
    finally:
        signal.signal(signal.SIGINT, previous)
    trainer: int | None = None
    try:
        _until(lambda: _trainer(proc.pid) is not None, log, 120, "no training started")
        trainer = _trainer(proc.pid)
        assert trainer is not None
        _until(lambda: "no candidates registered: training" in log.read_text(), log, 120,
               "the training never began")
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _until(lambda: not _running(trainer), log, 30, "the training outlived `abvoc up`")
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if trainer is not None and _running(trainer):
            os.kill(trainer, signal.SIGKILL)
