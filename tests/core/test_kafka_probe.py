"""The bus probe behind /readyz on Kafka: one admin client serves every probe. A client per
probe opened the brokers' connections and librdkafka's threads and closed them again each time,
leaving a socket in TIME_WAIT per connection: a load balancer probing every few seconds kept
hundreds of them about."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.bus.base import BusUnavailable
from core.bus.kafka import KafkaBus
from tests.support.kafka import KafkaBroker

TIME_WAIT = "06"


def closed_sockets_to(port: int) -> int:
    """Sockets this host closed towards `port` that still wait out TIME_WAIT."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == TIME_WAIT and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_probes_share_one_admin_client(kafka: KafkaBroker) -> None:
    bus = KafkaBus([kafka.bootstrap])
    bus.check()  # the client connects once
    before = closed_sockets_to(kafka.port)
    for _ in range(20):
        bus.check(timeout_s=5)
    # A client per probe left one or two closed connections a probe (23 in 20 probes).
    assert closed_sockets_to(kafka.port) - before < 5


def test_a_closed_bus_lets_its_probe_client_go(kafka: KafkaBroker) -> None:
    """Closed before a fork (`abvoc serve` checks the bus, then its server forks the workers):
    no librdkafka handle may be handed on; a probe after the close opens a client again."""
    bus = KafkaBus([kafka.bootstrap])
    bus.check()
    bus.close()
    assert bus._prober is None  # noqa: SLF001 - nothing of librdkafka's left to fork
    bus.check()


@pytest.mark.slow
def test_the_kept_client_sees_a_broker_go_and_come_back(own_broker: KafkaBroker) -> None:
    bus = KafkaBus([own_broker.bootstrap])
    bus.check()
    own_broker.kill()
    with pytest.raises(BusUnavailable, match="unavailable"):
        bus.check(timeout_s=2)
    own_broker.start()
    deadline = time.monotonic() + 30
    while True:  # librdkafka reconnects within its backoff (1 s at most, as configured)
        try:
            bus.check(timeout_s=2)
            break
        except BusUnavailable:
            assert time.monotonic() < deadline, "the probe never saw the broker again"
