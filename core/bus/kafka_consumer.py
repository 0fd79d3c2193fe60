"""The Kafka group member: reads from committed offsets checked against the topic's identity.

A topic deleted and created again under the same name is a new log: offsets committed for the
old one mean nothing there (the broker may keep or drop them; a member that committed late can
write them again), and a running librdkafka member may read on from its old positions in the
new log, skipping its first records, or wait minutes for its next metadata refresh. So every
commit names the topic id it was read under (the offset's metadata), an assignment starts a
partition whose committed offset names another id at the new log's first record, and a
running member whose topic changed id stops (TopicRecreated) so that a new member takes over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, TopicCollection
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import TopicPartition as RdTopicPartition
from confluent_kafka.admin import AdminClient

from core.bus.base import (
    BusUnavailable,
    CommitRefused,
    Consumer,
    PartitionLag,
    Record,
    TopicPartition,
    TopicRecreated,
)
from core.bus.kafka_client import _config, _LastError

log = logging.getLogger("core.bus.kafka")

# Commit errors that mean the group moved on without this member (see CommitRefused).
_STALE_MEMBER = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001 - librdkafka's local error codes start with _
}


def _why(exc: Exception) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else repr(exc)


TOPIC_CHECK_S = 5.0
"""Seconds between a running member's checks that its topics are still the ones it joined."""
_ID = "topic-id:"
"""Prefix of the committed offsets' metadata: the id of the topic incarnation they belong to."""
CLOSE_WAIT_S = 15.0
"""How long a stop waits for librdkafka to leave the group (see KafkaBusConsumer.close)."""


class KafkaBusConsumer(Consumer):
    """A group member. Each offset it commits names the topic id it was read under, so an
    offset of a topic that was deleted and created again under the same name is recognised
    (on assignment) and not used; a running member checks every `topic_check_s` seconds that its
    topics keep their ids (librdkafka may read on from its old positions in the new topic, or
    wait minutes for its next metadata refresh) and raises TopicRecreated when one changed."""

    def __init__(self, brokers: list[str], group_id: str, topics: Iterable[str], *,
                 topic_check_s: float = TOPIC_CHECK_S) -> None:
        self.group_id = group_id
        self.topic_check_s = topic_check_s
        self._admin = AdminClient(_config(brokers, _LastError()))
        self._consumer = RdConsumer(_config(brokers, _LastError(), {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 300000,
            # The broker answers a fetch once 256 KiB wait or 100 ms passed: under load the
            # worker gets batches large enough to spread each transaction's fixed cost.
            "fetch.min.bytes": 256 * 1024,
            "fetch.wait.max.ms": 100,
            # What the client fetches ahead of the worker, per partition: bounded memory.
            "queued.max.messages.kbytes": 16 * 1024,
        }))
        self._ids: dict[str, str] = {}  # topic -> id of the incarnation this member reads
        self._gone: str | None = None  # why this member cannot go on (TopicRecreated)
        self._failed: str | None = None  # why an assignment could not be checked
        self._next_check = time.monotonic() + topic_check_s
        self._closing = False
        self._consumer.subscribe(sorted(set(topics)), on_assign=self._on_assign)
        self._committed: dict[TopicPartition, int] = {}
        self._held: set[TopicPartition] = set()

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        """Wait up to `timeout_ms` for a first record, then take what has already arrived, up
        to `max_records` (librdkafka's batch call would wait for a full batch instead). Raises
        TopicRecreated once this member's topic was found deleted or recreated."""
        self._check_topics()
        try:
            first = self._consumer.poll(timeout_ms / 1000)
            messages = [first] if first is not None else []
            if first is not None and max_records < 1:  # callbacks only: put the record back
                messages = []
                if first.error() is None:
                    self._consumer.seek(RdTopicPartition(first.topic(), first.partition(),
                                                         first.offset()))
            if first is not None and max_records > 1:
                messages += self._consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka poll failed: {exc.args[0].str()}") from exc
        if self._failed is not None:  # records of an unchecked assignment are not handed out
            raise BusUnavailable(self._failed)
        if self._gone is not None:
            raise TopicRecreated(self._gone)
        held = self.assignment()
        if held != self._held:  # partitions moved: what was committed may have moved too
            self._held = held
            self._committed.clear()
        out = []
        for m in messages:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise BusUnavailable(f"Kafka poll failed: {error.str()}")
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    self._next_check = 0.0  # deleted, maybe recreated: look at once
                log.warning("Kafka consumer: %s", error.str())
                continue
            key = m.key()
            kind, stamp = m.timestamp()
            known = kind != TIMESTAMP_NOT_AVAILABLE and stamp > 0
            out.append(Record(m.topic(), m.partition(), m.offset(),
                              key.decode() if key is not None else None, m.value(),
                              stamp / 1000 if known else None))
        return out

    def _topic_ids(self, topics: Iterable[str]) -> dict[str, str | None]:
        """The id of each topic as it is now on the broker; None for one that does not exist."""
        out: dict[str, str | None] = {}
        futures = self._admin.describe_topics(TopicCollection(sorted(set(topics))),
                                              request_timeout=10)
        for name, future in futures.items():
            try:
                out[name] = str(future.result().topic_id)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
                out[name] = None
        return out

    def _check_topics(self) -> None:
        """Every `topic_check_s`, compare the ids of the topics this member reads with the ones
        it joined under; a change (or a topic gone) means this member must be replaced."""
        if self._gone is not None or not self._ids or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.topic_check_s
        try:
            now = self._topic_ids(self._ids)
        except KafkaException:
            return  # the broker cannot say now; the poll reports why, and the check comes again
        for topic, known in self._ids.items():
            if now.get(topic) != known:
                self._lose(topic, known, now.get(topic))

    def _lose(self, topic: str, known: str, now: str | None) -> None:
        """Mark this member done (its next polls raise TopicRecreated), logging it once."""
        if self._gone is not None:
            return
        again = f"deleted and created again (id {known}, now {now})" if now else "deleted"
        self._gone = (f"topic {topic!r} was {again}: this member of group {self.group_id} read "
                      "the old topic, so a new member must take over")
        log.warning("Kafka consumer: %s", self._gone)

    def _on_assign(self, consumer: RdConsumer, partitions: list[RdTopicPartition]) -> None:
        """Start each partition assigned at its committed offset, checked first: one committed
        for an earlier incarnation of the topic is not used (see _checked). While closing, no
        checks: nothing more is read, and the broker need not be asked anything."""
        self._failed = None
        if self._closing:
            consumer.assign(partitions)
            return
        try:
            for topic, now in self._topic_ids(p.topic for p in partitions).items():
                if now is None:
                    raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                    f"topic {topic!r} is gone"))
                known = self._ids.setdefault(topic, now)
                if known != now:
                    self._lose(topic, known, now)
            if self._gone is None:
                for p, committed in zip(partitions, consumer.committed(partitions, timeout=10),
                                        strict=True):
                    start = self._checked(committed)
                    if start >= 0:
                        p.offset = start
        except Exception as exc:  # noqa: BLE001 - raised from the next poll, not in librdkafka's callback
            why = _why(exc)
            self._failed = f"Kafka assignment could not be checked: {why}"
        consumer.assign(partitions)

    def _checked(self, committed: RdTopicPartition) -> int:
        """A committed offset (-1 for none), unless it is stale: committed for another topic id
        than the topic's now, or (committed before ids were recorded) past the partition's end.
        A stale one is replaced, on the broker too, by the start of the topic as it is now."""
        topic, partition, offset = committed.topic, committed.partition, committed.offset
        meta = committed.metadata or ""
        if offset < 0:
            return -1
        if meta.startswith(_ID) and meta.removeprefix(_ID) == self._ids.get(topic):
            return offset
        now = self._topic_ids([topic])[topic]
        if meta.startswith(_ID) and meta.removeprefix(_ID) == now:
            return offset
        if now != self._ids.setdefault(topic, now):  # this member reads a log that is gone
            self._lose(topic, self._ids[topic], now)
            return -1
        low, high = self._consumer.get_watermark_offsets(
            RdTopicPartition(topic, partition), timeout=5, cached=False)
        if not meta.startswith(_ID) and offset <= high:
            return offset
        log.warning("Kafka consumer group %s: the offset %d committed for %s [%d] is stale (%s); "
                    "reading from the first record of the topic as it is now, offset %d",
                    self.group_id, offset, topic, partition,
                    f"committed for topic id {meta.removeprefix(_ID)}, now {now}"
                    if meta.startswith(_ID) else f"past the partition's end, {high}", low)
        try:  # so that a fresh member need not judge it again; it would reach the same start
            self._send_commit({TopicPartition(topic, partition): low})
            self._committed[TopicPartition(topic, partition)] = low
        except KafkaException as exc:
            log.info("Kafka consumer group %s: the new start not committed yet: %s",
                     self.group_id, _why(exc))
        return low

    def _send_commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, each offset naming the topic id this member reads (when known)."""
        done = self._consumer.commit(offsets=[
            RdTopicPartition(tp.topic, tp.partition, off, metadata=_ID + self._ids[tp.topic])
            if tp.topic in self._ids else RdTopicPartition(tp.topic, tp.partition, off)
            for tp, off in offsets.items()], asynchronous=False)
        errors = [tp.error for tp in done or [] if tp.error is not None]
        if errors:
            raise KafkaException(errors[0])

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-offsets; an offset lower than the group's committed one is left out, so
        a committed offset never moves backwards (Kafka itself would accept it). The broker
        refuses a commit from a member of an older generation (CommitRefused)."""
        try:
            if offsets is None:
                offsets = {
                    TopicPartition(tp.topic, tp.partition): tp.offset
                    for tp in self._consumer.position(self._consumer.assignment())
                    if tp.offset >= 0
                }
            forward = {tp: off for tp, off in offsets.items() if off > self._last_committed(tp)}
            if not forward:
                return
            self._send_commit(forward)
            self._committed.update(forward)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in _STALE_MEMBER:
                raise CommitRefused(
                    f"Kafka refused the commit after a rebalance: {error.str()}") from exc
            raise BusUnavailable(f"Kafka commit failed: {error.str()}") from exc

    def _last_committed(self, tp: TopicPartition) -> int:
        if tp not in self._committed:
            (committed,) = self._consumer.committed(
                [RdTopicPartition(tp.topic, tp.partition)], timeout=10)
            self._committed[tp] = self._checked(committed)
        return self._committed[tp]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[TopicPartition, PartitionLag]:
        """Per partition held: the position (before the first record, the committed offset,
        else the log start) and the high watermark, both asked of the broker now."""
        out = {}
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                low, high = self._consumer.get_watermark_offsets(
                    RdTopicPartition(tp.topic, tp.partition), timeout=5, cached=False)
                key = TopicPartition(tp.topic, tp.partition)
                position = tp.offset
                if position < 0:  # nothing read since it was assigned
                    committed = self._last_committed(key)
                    position = committed if committed >= 0 else low
                out[key] = PartitionLag(position, high)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka offsets unavailable: {exc.args[0].str()}") from exc
        return out

    def close(self) -> None:
        """Leave the group, committing nothing (auto-commit is off; what was read and not
        committed is read again by whoever holds the partitions next).

        Unsubscribed first, with polls until the revocation has been served here: a rebalance
        that reaches librdkafka's close itself can block it for good (its assign call never
        returns, with the interpreter lock held, so the whole process froze; seen when two
        members of a group stopped together). Then closed on a helper thread, waited for at
        most CLOSE_WAIT_S: a member left behind is dropped by the broker after its session
        timeout, and a stop never hangs on it."""
        self._closing = True
        deadline = time.monotonic() + CLOSE_WAIT_S
        try:
            self._consumer.unsubscribe()
            while self._consumer.assignment() and time.monotonic() < deadline:
                self._consumer.poll(0.1)  # serves the revocation; a record read is dropped
        except (KafkaException, RuntimeError) as exc:  # RuntimeError: closed already
            log.info("Kafka consumer of group %s: leaving the group: %s", self.group_id,
                     _why(exc))
        closed = threading.Event()

        def leave() -> None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("Kafka consumer did not close cleanly: %s", _why(exc))
            finally:
                closed.set()

        threading.Thread(target=leave, name=f"kafka-close-{self.group_id}", daemon=True).start()
        if not closed.wait(max(1.0, deadline - time.monotonic())):
            log.warning("Kafka consumer of group %s did not leave the group within %.0fs; the "
                        "broker drops it after its session timeout", self.group_id,
                        CLOSE_WAIT_S)
