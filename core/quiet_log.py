"""Warnings said once a while, not once a request: an outage turns every request and every
probe into the same failure, and hundreds of identical lines a second bury the cause."""

from __future__ import annotations

import logging
import threading
import time

EVERY_S = 30.0

_lock = threading.Lock()
_last: dict[str, tuple[float, int]] = {}  # what was said -> (when, times left unsaid since)


def warn_now_and_then(logger: logging.Logger, message: str, every_s: float = EVERY_S) -> None:
    """Log `message` as a warning unless it was logged within `every_s`; the next time it is
    logged, it says how many times it was left out meanwhile."""
    now = time.monotonic()
    with _lock:
        when, skipped = _last.get(message, (-float("inf"), 0))
        if now - when < every_s:
            _last[message] = (when, skipped + 1)
            return
        _last[message] = (now, 0)
    tail = f" (and {skipped} more times in the last {now - when:.0f}s)" if skipped else ""
    logger.warning("%s%s", message, tail)
