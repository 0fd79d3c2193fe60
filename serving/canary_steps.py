"""Canary steps taken off the request path.

The router reloads the active experiments on a request thread (every `refresh_s`, under its
lock, so every request of the process waits for that reload). A canary step is a write: taken
there, it waited for the store's write lock, up to the busy timeout (30 s), whenever another
process held it (a long write, a backup), and every request of the process waited with it,
although the request spool keeps the answers' rows without the store. The router hands running
canaries to this thread instead; a step taken commits as any routing change does, so every
router reloads right after it (serving/route_changes.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from core.store.db import BUSY_TIMEOUT_MS
from serving.experiments import Experiments

log = logging.getLogger(__name__)

CLOSE_WAIT_S = BUSY_TIMEOUT_MS / 1000 + 5  # a step waiting on a held store gives up by then


class CanarySteps:
    """One thread that steps the canaries the router saw running, when due (`advance` with
    `only_if_due`), however long the store's write lock keeps it waiting."""

    def __init__(self, experiments: Experiments) -> None:
        self.experiments = experiments
        self._cond = threading.Condition()
        self._asked: set[int] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def ask(self, experiment_ids: Iterable[int]) -> None:
        """Step these experiments' canaries if due; returns at once (the request path)."""
        with self._cond:
            if self._stopping:
                return
            self._asked.update(experiment_ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="canary-steps",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=CLOSE_WAIT_S)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._asked or self._stopping)
                if self._stopping:
                    return
                asked, self._asked = self._asked, set()
            for experiment_id in sorted(asked):
                try:
                    self.experiments.advance(experiment_id, only_if_due=True)
                except Exception as exc:  # a busy or gone store: the next reload asks again
                    log.warning("the canary of experiment %s was not stepped (%s); trying "
                                "again at the next reload", experiment_id, exc)
