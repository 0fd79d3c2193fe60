"""The Kafka client against a broker that is not there: a clear BusUnavailable, and librdkafka's
repeated connect failures logged once rather than several times a second."""

from __future__ import annotations

import logging

import pytest

from core.bus import kafka
from core.bus.base import BusUnavailable
from core.bus.kafka import KafkaBus
from tests.support.ports import free_port


def test_a_dead_broker_is_reported_once_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    producer = KafkaBus([f"127.0.0.1:{port}"], delivery_timeout_s=3).producer()
    with caplog.at_level(logging.INFO, logger="core.bus.kafka"), \
            pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}.*Connection refused"):
        producer.send_many([("t", "k", b"v")] * 10)
    failed_connects = [r for r in caplog.records
                       if r.name == "core.bus.kafka.librdkafka" and "Connection refused" in
                       r.getMessage()]
    # Unfiltered, librdkafka logs this about 14 times in these 3 s.
    assert 1 <= len(failed_connects) <= 2, [r.getMessage() for r in failed_connects]


def test_held_back_lines_are_counted_on_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: clock[0])
    repeats = kafka._Repeats(every_s=60)

    def line(client: str = "rdkafka#producer-1") -> logging.LogRecord:
        return logging.LogRecord("core.bus.kafka.librdkafka", logging.ERROR, __file__, 1,
                                 "%s [%s] %s", ("FAIL", client, "connect failed"), None)

    assert repeats.filter(line())
    clock[0] += 1
    assert not repeats.filter(line()) and not repeats.filter(line())
    assert repeats.filter(line("rdkafka#consumer-2"))  # another client says it once too
    clock[0] += 60
    record = line()
    assert repeats.filter(record)
    assert record.getMessage() == ("FAIL [rdkafka#producer-1] connect failed "
                                   "(2 more like it in the last 61 s)")
    for n in range(3000):  # clients started afresh one after another: old keys are let go
        clock[0] += 0.1
        repeats.filter(line(f"rdkafka#producer-{n + 2}"))
    assert len(repeats._last) <= 1001


def test_a_bus_error_keeps_what_failed_beside_the_summary_that_followed() -> None:
    """librdkafka's "all brokers are down" comes after the refused connect that caused it:
    the reason given keeps both, the most recent first."""
    from confluent_kafka import KafkaError

    errors = kafka._LastError()
    assert errors.text == "no error reported by the client"
    errors(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: Connection refused"))  # noqa: SLF001
    errors(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))  # noqa: SLF001
    assert errors.text == "1/1 brokers are down; 127.0.0.1:9/bootstrap: Connection refused"
    errors(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: timed out"))  # noqa: SLF001
    assert errors.text == "127.0.0.1:9/bootstrap: timed out; 1/1 brokers are down"
