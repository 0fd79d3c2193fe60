"""The Kafka transport, on kafka-python against a real Apache Kafka broker.

The producer is idempotent with acks=all, so a record the broker acknowledged is on every in-sync
replica and a retry never writes it twice within one producer session. Consumers never auto-commit:
the caller commits after its work is durable in the store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from core.bus.base import (
    Bus,
    BusUnavailable,
    CommitRefused,
    Consumer,
    Producer,
    Record,
    TopicPartition,
)

log = logging.getLogger(__name__)


class KafkaBusProducer(Producer):
    def __init__(self, brokers: list[str], delivery_timeout_s: float) -> None:
        self.brokers = brokers
        self.delivery_timeout_s = delivery_timeout_s
        self._producer: KafkaProducer | None = None

    def _client(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.brokers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    batch_size=256 * 1024,
                    max_block_ms=int(self.delivery_timeout_s * 1000),
                    request_timeout_ms=int(self.delivery_timeout_s * 1000) - 1000,
                    delivery_timeout_ms=int(self.delivery_timeout_s * 1000),
                    reconnect_backoff_max_ms=1000,
                    bootstrap_timeout_ms=int(self.delivery_timeout_s * 1000),
                )
            except KafkaError as exc:
                raise BusUnavailable(f"Kafka at {self.brokers} unavailable: {exc!r}") from exc
        return self._producer

    def send_many(self, records: Iterable[tuple[str, str | None, bytes]]) -> None:
        producer = self._client()
        try:
            futures = [
                producer.send(topic, key=key.encode() if key is not None else None, value=value)
                for topic, key, value in records
            ]
            producer.flush(timeout=self.delivery_timeout_s)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            # The client may be wedged after a broker outage; start afresh next time.
            self.close()
            raise BusUnavailable(f"Kafka delivery failed: {exc!r}") from exc

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                # Long enough for undeliverable batches to expire (delivery timeout), so the
                # client really closes and never flushes again from its finaliser.
                producer.close(timeout=self.delivery_timeout_s + 2)
            except KafkaError:
                log.warning("Kafka producer did not close cleanly", exc_info=True)
                _force_close(producer)


def _force_close(producer: KafkaProducer) -> None:
    """Give up a producer whose close timed out (batches still waiting on a dead broker).

    kafka-python flushes before it closes and leaves the producer open when the flush times out;
    its finaliser then flushes again and raises from garbage collection, at some later moment.
    The records were already reported undelivered (the outbox sends them again), so drop them.
    """
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
    producer._closed = True  # noqa: SLF001 - see the docstring


class KafkaBusConsumer(Consumer):
    def __init__(self, brokers: list[str], group_id: str, topics: Iterable[str]) -> None:
        try:
            self._consumer = KafkaConsumer(
                *sorted(set(topics)),
                bootstrap_servers=brokers,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=10000,
                heartbeat_interval_ms=1000,
                max_poll_interval_ms=300000,
                # The broker answers a fetch once 256 KiB wait or 100 ms passed: under load the
                # worker gets batches large enough to spread each transaction's fixed cost.
                fetch_min_bytes=256 * 1024,
                fetch_max_wait_ms=100,
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=10000,
            )
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka at {brokers} unavailable: {exc!r}") from exc
        self._committed: dict[TopicPartition, int] = {}
        self._held: set[TopicPartition] = set()

    def poll(self, timeout_ms: int = 1000, max_records: int = 500) -> list[Record]:
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka poll failed: {exc!r}") from exc
        held = self.assignment()
        if held != self._held:  # partitions moved: what was committed may have moved too
            self._held = held
            self._committed.clear()
        out = []
        for tp, messages in batches.items():
            for m in messages:
                key = m.key.decode() if m.key is not None else None
                stamp = m.timestamp / 1000 if m.timestamp and m.timestamp > 0 else None
                out.append(Record(tp.topic, tp.partition, m.offset, key, m.value, stamp))
        return out

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-offsets; an offset lower than the group's committed one is left out, so
        a committed offset never moves backwards (Kafka itself would accept it). The broker
        refuses a commit from a member of an older generation (CommitRefused)."""
        try:
            if offsets is None:
                offsets = {
                    TopicPartition(tp.topic, tp.partition): self._consumer.position(tp)
                    for tp in self._consumer.assignment()
                }
            forward = {tp: off for tp, off in offsets.items() if off > self._last_committed(tp)}
            if not forward:
                return
            self._consumer.commit(
                {
                    KTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(off, "", -1)
                    for tp, off in forward.items()
                }
            )
            self._committed.update(forward)
        except CommitFailedError as exc:
            raise CommitRefused(f"Kafka refused the commit after a rebalance: {exc!r}") from exc
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka commit failed: {exc!r}") from exc

    def _last_committed(self, tp: TopicPartition) -> int:
        if tp not in self._committed:
            committed = self._consumer.committed(
                KTopicPartition(tp.topic, tp.partition), timeout_ms=10000
            )
            self._committed[tp] = committed if committed is not None else -1
        return self._committed[tp]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except KafkaError:
            log.warning("Kafka consumer did not close cleanly", exc_info=True)


class KafkaBus(Bus):
    def __init__(
        self, brokers: Iterable[str], partitions: int = 3, *, delivery_timeout_s: float = 10.0
    ) -> None:
        self.brokers = list(brokers)
        self.partitions = partitions
        self.delivery_timeout_s = delivery_timeout_s

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(
                bootstrap_servers=self.brokers, request_timeout_ms=10000, bootstrap_timeout_ms=5000
            )
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka at {self.brokers} unavailable: {exc!r}") from exc

    def ensure_topics(self, topics: Iterable[str]) -> None:
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(name=t, num_partitions=self.partitions, replication_factor=1)
                for t in topics
                if t not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(new)
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka topic creation failed: {exc!r}") from exc
        finally:
            admin.close()

    def producer(self) -> Producer:
        return KafkaBusProducer(self.brokers, self.delivery_timeout_s)

    def consumer(self, group_id: str, topics: Iterable[str]) -> Consumer:
        return KafkaBusConsumer(self.brokers, group_id, topics)

    def check(self) -> None:
        self._admin().close()
