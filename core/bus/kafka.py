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

import threading
import time
from collections import Counter
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as RdProducer
from confluent_kafka.admin import AdminClient, NewTopic

from core.bus.base import Bus, BusUnavailable, Consumer, Producer
from core.bus.kafka_client import _config, _LastError, _Repeats
from core.bus.kafka_consumer import KafkaBusConsumer

__all__ = ["KafkaBus", "KafkaBusConsumer", "KafkaBusProducer", "_LastError", "_Repeats"]
_NO_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}  # noqa: SLF001


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
        failed: list[tuple[KafkaError, str]] = []
        waiting: Counter[str] = Counter()  # records not yet acknowledged, by topic

        def delivered(error: KafkaError | None, message: Message) -> None:
            waiting[message.topic()] -= 1
            if error is not None:
                failed.append((error, message.topic()))

        deadline = time.monotonic() + self.delivery_timeout_s
        for topic, key, value in records:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    waiting[topic] += 1
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
                          f"({self._missing({t for t, n in waiting.items() if n > 0})}"
                          f"{self._errors.text})")
        if failed:
            error, topic = failed[0]
            missing = (f"topic {topic!r} does not exist; " if error.code() in _NO_TOPIC
                       else self._missing({t for e, t in failed}))
            self._give_up(f"{error.str()} ({missing}{self._errors.text})")

    def _missing(self, topics: set[str]) -> str:
        """'topic 'x' does not exist; ' for those of `topics` the broker does not know (a
        timed-out delivery says only that it timed out), or '' (also when it cannot say)."""
        producer = self._producer
        if not topics or producer is None:
            return ""
        try:  # all topics: asking for one would create it where the broker auto-creates
            known = set(producer.list_topics(timeout=2).topics)
        except KafkaException:
            return ""
        return "".join(f"topic {t!r} does not exist; " for t in sorted(topics - known))

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


class KafkaBus(Bus):
    def __init__(
        self, brokers: Iterable[str], partitions: int = 3, *, delivery_timeout_s: float = 10.0
    ) -> None:
        self.brokers = list(brokers)
        self.partitions = partitions
        self.delivery_timeout_s = delivery_timeout_s
        self._prober: AdminClient | None = None
        self._prober_lock = threading.Lock()

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
        # -1: the cluster's default.replication.factor. A fixed 1 left every record on one
        # broker whatever the cluster keeps: that broker down, its partitions took nothing.
        new = [NewTopic(t, num_partitions=self.partitions, replication_factor=-1)
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

    def close(self) -> None:
        """Let the probes' client go: `abvoc serve` checks the bus and closes it before its
        server forks the workers, and librdkafka's threads do not survive a fork."""
        with self._prober_lock:
            self._prober = None

    def check(self, timeout_s: float = 5.0) -> None:
        """Whether the brokers answer, on one admin client kept for the probes: a client per
        probe opened and closed its connections and librdkafka's threads on every /readyz (a
        load balancer's probe every few seconds), and left a closed socket behind each time."""
        with self._prober_lock:
            if self._prober is None:
                self._prober = self._admin()
            prober = self._prober
        self._topics(prober, timeout_s)
