"""A consumer's lag, from the bus's end offsets rather than from the records it happened to get.

The age of the records a poll returns says nothing when polls return nothing: a consumer whose
fetches stopped (its topic deleted and recreated under it, a partition stuck) read as "lag 0"
while records piled up. The standard figure is the end offset minus the consumer's position,
per partition held; it is exported as ``abvoc_consumer_lag_records``. The heartbeat's `lag_s`
(what /readyz judges against its limit in seconds) keeps its name and unit and now means the
larger of: the age of the oldest record of the last batch (as before), and how long some held
partition has had records waiting while the consumer's position there did not move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Gauge

from core.bus.base import BusUnavailable, Consumer, PartitionLag, TopicPartition

log = logging.getLogger(__name__)

LAG_CHECK_S = 5.0
"""Seconds between reads of the end offsets (each costs the bus a request per partition)."""

RECORDS_BEHIND = Gauge("abvoc_consumer_lag_records",
                       "Records appended to a partition that its consumer has not read",
                       ["group", "topic", "partition"], multiprocess_mode="livemax")


class LagTracker:
    """Follows one group member's position against the end offsets of the partitions it holds."""

    def __init__(self, group_id: str, *, every_s: float = LAG_CHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group_id = group_id
        self.every_s = every_s
        self.clock = clock
        self.offsets: dict[TopicPartition, PartitionLag] = {}
        self._moved_at: dict[TopicPartition, tuple[int, float]] = {}
        self._next_check = float("-inf")
        self._failed = False

    def observe(self, consumer: Consumer, *, force: bool = False) -> None:
        """Read the end offsets again if `every_s` passed (or `force`); a bus that cannot say
        keeps the last figures, and the stall clock keeps running."""
        now = self.clock()
        if not force and now < self._next_check:
            return
        self._next_check = now + self.every_s
        try:
            offsets = consumer.lag()
        except BusUnavailable as exc:
            if not self._failed:
                log.info("consumer %s: cannot read end offsets: %s", self.group_id, exc)
            self._failed = True
            return
        self._failed = False
        for tp, now_at in offsets.items():
            before = self._moved_at.get(tp)
            if now_at.behind == 0 or before is None or now_at.position != before[0]:
                self._moved_at[tp] = (now_at.position, now)
        for tp in set(self.offsets) - set(offsets):  # moved to another member: it reports them
            self._moved_at.pop(tp, None)
            RECORDS_BEHIND.labels(self.group_id, tp.topic, str(tp.partition)).set(0)
        for tp, now_at in offsets.items():
            RECORDS_BEHIND.labels(self.group_id, tp.topic, str(tp.partition)).set(now_at.behind)
        self.offsets = offsets

    @property
    def records_behind(self) -> int:
        """Records waiting in all partitions held, at the last check."""
        return sum(o.behind for o in self.offsets.values())

    def stalled_s(self) -> float:
        """How long the longest-waiting held partition has had records waiting without the
        position moving (0 when every partition is caught up or moving)."""
        now = self.clock()
        waits = [now - self._moved_at[tp][1] for tp, o in self.offsets.items()
                 if o.behind > 0 and tp in self._moved_at]
        return max(waits, default=0.0)
