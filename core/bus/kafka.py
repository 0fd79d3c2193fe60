"""The Kafka transport, on confluent-kafka (librdkafka) against a real Apache Kafka broker.

librdkafka does the protocol work (batching, compression, checksums, heartbeats, retries) in C
threads of its own, so a record costs the relay and the worker a few microseconds of Python
instead of the tens a pure-Python client spends on it.

The producer is idempotent with acks=all, so a record the broker acknowledged is on every in-sync
replica and a retry never writes it twice within one producer session. Keys pick partitions with
murmur2, as Kafka's Java clients do, so records of one key stay on one partition whichever client
wrote them. Consumers never auto-commit: the caller commits after its work is durable in the
store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.bus.base import (
    Bus,
    BusUnavailable,
    CommitRefused,
    Consumer,
    PartitionLag,
    Producer,
    Record,
    TopicPartition,
)

log = logging.getLogger(__name__)

# Commit errors that mean the group moved on without this member (see CommitRefused).
_STALE_MEMBER = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001 - librdkafka's local error codes start with _
}


class _LastError:
    """librdkafka reports broker trouble (refused connections, all brokers down) to a callback
    rather than raising; the latest report of each kind is kept so that a BusUnavailable can say
    why. Kinds, not just the last report: after each failed connect librdkafka also reports
    "1/1 brokers are down", which alone does not say what failed."""

    KEPT = 3

    def __init__(self) -> None:
        self._latest: dict[int, str] = {}  # by error code, the most recent last

    def __call__(self, error: KafkaError) -> None:
        text = error.str()
        self._latest.pop(error.code(), None)
        self._latest[error.code()] = text
        if len(self._latest) > self.KEPT:
            del self._latest[next(iter(self._latest))]
        log.debug("Kafka client: %s", text)

    @property
    def text(self) -> str:
        """The latest report of each kind, the most recent first."""
        if not self._latest:
            return "no error reported by the client"
        return "; ".join(reversed(self._latest.values()))


class _Repeats(logging.Filter):
    """Lets one librdkafka log line per client, facility and level through every `every_s`
    seconds. While a broker is down each client logs a failed connect several times a second;
    one line says it, and the next one let through counts those held back."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.levelno, *args[:2])  # librdkafka's lines: (facility, client, text)
        now = time.monotonic()
        last, held = self._last.get(key, (-self.every_s, 0))
        if now - last < self.every_s:
            self._last[key] = (last, held + 1)
            return False
        if len(self._last) > 1000:  # clients come and go (one per producer started afresh)
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self.every_s}
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {now - last:.0f} s)"
        return True


_LIBRDKAFKA = logging.getLogger(f"{__name__}.librdkafka")
_LIBRDKAFKA.addFilter(_Repeats())


def _config(brokers: list[str], errors: _LastError,
            settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A client's librdkafka settings: what every client shares, then `settings`."""
    return {
        "bootstrap.servers": ",".join(brokers),
        "reconnect.backoff.max.ms": 1000,
        "error_cb": errors,
        "logger": _LIBRDKAFKA,
        **(settings or {}),
    }


class KafkaBusProducer(Producer):
    def __init__(self, brokers: list[str], delivery_timeout_s: float) -> None:
        self.brokers = brokers
        self.delivery_timeout_s = delivery_timeout_s
        self._errors = _LastError()
        self._producer: RdProducer | None = None

    def _client(self) -> RdProducer:
        if self._producer is None:
            timeout_ms = int(self.delivery_timeout_s * 1000)
            self._producer = RdProducer(_config(self.brokers, self._errors, {
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 1024 * 1024,
                "message.timeout.ms": timeout_ms,
                "partitioner": "murmur2_random",
            }))
        return self._producer

    def send_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> None:
        producer = self._client()
        failed: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failed.append(error)

        deadline = time.monotonic() + self.delivery_timeout_s
        for topic, key, value in records:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # the client's queue is full: let deliveries drain it
                    if time.monotonic() > deadline:
                        self._give_up("the client's send queue stayed full")
                    producer.poll(0.05)
                except KafkaException as exc:
                    self._give_up(exc.args[0].str())
        left = producer.flush(max(deadline - time.monotonic(), 0.0))
        if left:
            self._give_up(f"{left} records not acknowledged within {self.delivery_timeout_s} s "
                          f"({self._errors.text})")
        if failed:
            self._give_up(f"{failed[0].str()} ({self._errors.text})")

    def _give_up(self, why: str) -> None:
        """Drop what is still queued (the outbox sends it again) and start afresh next time: an
        idempotent producer that lost records must not go on with a gap in its sequence."""
        self.close()
        raise BusUnavailable(f"Kafka delivery failed: {why}")

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.purge()
            producer.flush(0)  # serves the purged records' callbacks


class KafkaBusConsumer(Consumer):
    def __init__(self, brokers: list[str], group_id: str, topics: Iterable[str]) -> None:
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
        self._consumer.subscribe(sorted(set(topics)))
        self._committed: dict[TopicPartition, int] = {}
        self._held: set[TopicPartition] = set()

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        """Wait up to `timeout_ms` for a first record, then take what has already arrived, up
        to `max_records` (librdkafka's batch call would wait for a full batch instead)."""
        try:
            first = self._consumer.poll(timeout_ms / 1000)
            messages = [first] if first is not None else []
            if first is not None and max_records > 1:
                messages += self._consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka poll failed: {exc.args[0].str()}") from exc
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
                log.warning("Kafka consumer: %s", error.str())
                continue
            key = m.key()
            kind, stamp = m.timestamp()
            known = kind != TIMESTAMP_NOT_AVAILABLE and stamp > 0
            out.append(Record(m.topic(), m.partition(), m.offset(),
                              key.decode() if key is not None else None, m.value(),
                              stamp / 1000 if known else None))
        return out

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
            done = self._consumer.commit(
                offsets=[RdTopicPartition(tp.topic, tp.partition, off)
                         for tp, off in forward.items()],
                asynchronous=False,
            )
            errors = [tp.error for tp in done or [] if tp.error is not None]
            if errors:
                raise KafkaException(errors[0])
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
            self._committed[tp] = committed.offset if committed.offset >= 0 else -1
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
        try:
            self._consumer.close()  # leaves the group; commits nothing (auto-commit is off)
        except KafkaException as exc:
            log.warning("Kafka consumer did not close cleanly: %s", exc.args[0].str())


class KafkaBus(Bus):
    def __init__(
        self, brokers: Iterable[str], partitions: int = 3, *, delivery_timeout_s: float = 10.0
    ) -> None:
        self.brokers = list(brokers)
        self.partitions = partitions
        self.delivery_timeout_s = delivery_timeout_s

    def _admin(self) -> AdminClient:
        return AdminClient(_config(self.brokers, _LastError()))

    def _topics(self, admin: AdminClient, timeout_s: float) -> set[str]:
        try:
            return set(admin.list_topics(timeout=timeout_s).topics)
        except KafkaException as exc:
            raise BusUnavailable(
                f"Kafka at {self.brokers} unavailable: {exc.args[0].str()}") from exc

    def ensure_topics(self, topics: Iterable[str]) -> None:
        admin = self._admin()
        existing = self._topics(admin, 10)
        new = [NewTopic(t, num_partitions=self.partitions, replication_factor=1)
               for t in topics if t not in existing]
        if not new:
            return
        for name, future in admin.create_topics(new, request_timeout=10).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BusUnavailable(
                        f"Kafka could not create topic {name!r}: {exc.args[0].str()}") from exc

    def producer(self) -> Producer:
        return KafkaBusProducer(self.brokers, self.delivery_timeout_s)

    def consumer(self, group_id: str, topics: Iterable[str]) -> Consumer:
        return KafkaBusConsumer(self.brokers, group_id, topics)

    def check(self) -> None:
        self._topics(self._admin(), 5)
