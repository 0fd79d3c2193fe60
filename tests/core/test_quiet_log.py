"""A warning repeated by every request of an outage is logged once a while, with a count."""

from __future__ import annotations

import logging

from core import quiet_log


def test_repeats_within_the_interval_are_counted_and_said_with_the_next_line(
        caplog, monkeypatch) -> None:  # noqa: ANN001
    now = [1000.0]
    monkeypatch.setattr(quiet_log.time, "monotonic", lambda: now[0])
    log = logging.getLogger("quiet-test")
    with caplog.at_level(logging.WARNING, logger="quiet-test"):
        for _ in range(5):
            quiet_log.warn_now_and_then(log, "store unavailable: X", every_s=30)
        quiet_log.warn_now_and_then(log, "another cause", every_s=30)
        now[0] += 31
        quiet_log.warn_now_and_then(log, "store unavailable: X", every_s=30)
    assert [r.getMessage() for r in caplog.records] == [
        "store unavailable: X", "another cause",
        "store unavailable: X (and 4 more times in the last 31s)"]
