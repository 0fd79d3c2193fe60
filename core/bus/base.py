"""The bus interface both transports implement, and the contract tests in tests/core/bus check.

Semantics shared by both:
- topics have a fixed number of partitions; a record's key picks its partition, so records with
  one key stay in order;
- consumers join a group; the group's partitions are shared among its live members, and every
  change of membership starts a new generation: a member still on an older one has its commits
  refused (CommitRefused), so a member that lost its partitions cannot commit for them;
- a consumer reads from its group's committed offsets and commits explicitly: offsets are
  committed only after the consumer's work is durable (at-least-once; apply is idempotent);
- a committed offset never moves backwards: committing a lower one leaves it where it is;
- a poll shares its records among the member's partitions, so one busy partition cannot starve
  the others;
- an offset is committed for one incarnation of its topic: a topic deleted and created again
  under the same name is read from its first record, whatever was committed for the old one
  (the running member raises TopicRecreated and is replaced).
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class BusUnavailable(Exception):
    """The transport cannot take or give records right now (e.g. the broker is down)."""


class TopicRecreated(BusUnavailable):
    """A topic this member reads was deleted (and perhaps created again) under it: its
    positions there belong to a log that is gone, so it cannot go on. Close it and start a new
    member, which reads the new topic from its first record (offsets committed for the old one
    are recognised and not used). Raised by every poll after it is noticed, never before the
    records already returned could be committed."""


class CommitRefused(BusUnavailable):
    """The group moved to a new generation (a member joined or left) after this member last
    joined, so its commit was refused: it may no longer hold those partitions. The member has
    rejoined; records it read but could not commit are read again (apply is idempotent)."""


@dataclass(frozen=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp: float | None = None
    """When the record was appended to the bus (seconds since the epoch), if known."""

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def partition_for(key: str | None, partitions: int) -> int:
    """A stable partition for a key (the same in every process)."""
    if key is None:
        return 0
    return zlib.crc32(key.encode()) % partitions


@dataclass(frozen=True)
class PartitionLag:
    """Where a consumer stands in one partition: its position (the next offset it will read)
    and the partition's end offset (the offset the next appended record gets)."""

    position: int
    end: int

    @property
    def behind(self) -> int:
        """Records appended that the consumer has not read: the standard consumer lag."""
        return max(0, self.end - self.position)


class Producer(ABC):
    @abstractmethod
    def send_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> None:
        """Publish (topic, key, value) records; returns only when all are durable on the bus.

        Raises BusUnavailable if any could not be delivered; some may have been (the outbox
        retries, and consumers deduplicate by event id)."""

    def send(self, topic: str, key: str | None, value: bytes) -> None:
        self.send_many([(topic, key, value)])

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Consumer(ABC):
    @abstractmethod
    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        """Records after the position, from the partitions this member holds."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-offsets (default: the position after everything polled so far)."""

    @abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently holds."""

    def lag(self) -> dict[TopicPartition, PartitionLag]:
        """Position and end offset of each partition held, read from the bus now (a round
        trip: call it every few seconds, not every poll); empty when unknown."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Bus(ABC):
    """A transport: makes producers and group consumers, and creates topics."""

    partitions: int

    @abstractmethod
    def ensure_topics(self, topics: Iterable[str]) -> None: ...

    @abstractmethod
    def producer(self) -> Producer: ...

    @abstractmethod
    def consumer(self, group_id: str, topics: Iterable[str]) -> Consumer: ...

    @abstractmethod
    def check(self, timeout_s: float = 5.0) -> None:
        """Raise BusUnavailable if the transport cannot be reached within `timeout_s`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
