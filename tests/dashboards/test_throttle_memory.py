"""The login throttle's memory stays bounded however many addresses fail (dashboards.throttle)."""

from __future__ import annotations

import pytest

import dashboards.throttle as throttle
from dashboards.throttle import Throttle


def test_expired_blocks_of_addresses_that_never_return_are_forgotten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked addresses stayed until each came back: 3,000 of them, all expired, stayed."""
    monkeypatch.setattr(throttle, "_MAX_ADDRESSES", 100)
    now = [1000.0]
    monkeypatch.setattr(throttle.time, "monotonic", lambda: now[0])
    limit = Throttle(failures=2, window_s=60, block_s=60)
    for i in range(3000):
        limit.failed(f"10.0.{i // 256}.{i % 256}")
        limit.failed(f"10.0.{i // 256}.{i % 256}")
        now[0] += 0.5  # each block ends 60 s after it began: most are over by the next ones
        assert len(limit._blocked) <= 100 and len(limit._failed) <= 100
    assert limit.wait("10.0.11.183") > 0  # the newest block holds


def test_blocks_that_have_not_ended_are_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one block's time a flood of addresses keeps the newer blocks, not all of them."""
    monkeypatch.setattr(throttle, "_MAX_ADDRESSES", 100)
    monkeypatch.setattr(throttle.time, "monotonic", lambda: 5.0)
    limit = Throttle(failures=1, window_s=60, block_s=60)
    for i in range(1000):
        limit.failed(f"2001:db8::{i:x}")
        assert len(limit._blocked) <= 100
    assert limit.wait("2001:db8::3e7") == 60
    assert len(limit._blocked) >= 50  # the newer half stays blocked
