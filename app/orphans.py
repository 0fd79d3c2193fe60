"""A process that stops once the process that started it is gone.

A parent killed with SIGKILL runs no handler: its children kept running as orphans. A server's
workers kept its port (every new `abvoc serve` failed with "Address already in use"); `abvoc
up`'s API, relay and worker kept going with nothing to restart them, and the next `abvoc up`
could not bind. Each such child watches its parent and stops itself, gracefully first.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)
SUPERVISOR_PID_VAR = "ABVOC_SUPERVISOR_PID"
"""Set by `abvoc up` in its children's environment: the pid they watch."""


def stop_when_orphaned(parent_pid: int, grace_s: int, every_s: float = 1.0) -> None:
    """Stop this process (SIGTERM to itself, as its parent would send) once `parent_pid` is no
    longer its parent; after `grace_s` still here, exit at once."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        log.warning("parent process %d is gone; process %d stops", parent_pid, os.getpid())
        # Again until it takes: one that came while the app loaded met no stop handler yet.
        for _ in range(max(1, grace_s // 2)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)
        os._exit(1)  # still here after a graceful stop's time: nobody else will end it

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def watch_supervisor() -> None:
    """In a child of `abvoc up` (its supervisor's pid in the environment, and still its
    parent): stop when the supervisor is gone."""
    pid = os.environ.get(SUPERVISOR_PID_VAR)
    if pid and pid.isdigit() and int(pid) == os.getppid():
        stop_when_orphaned(int(pid), grace_s=30)
