"""A Kafka group member's stop: members of one group stopping together once froze a worker
process for good (librdkafka's close was reached by the rebalance the other member's leaving
started, and its assign call never returned, holding the interpreter lock: a CI run hung until
its limit). A member now unsubscribes and serves its revocation in its own polls before it
closes, and waits for the close a bounded time."""

from __future__ import annotations

import random
import threading
import time
import uuid

from core.bus.kafka import KafkaBus
from core.bus.kafka_consumer import CLOSE_WAIT_S, KafkaBusConsumer


def _until_assigned(members: list[KafkaBusConsumer], want: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(len(m.assignment()) for m in members) < want or not all(
            m.assignment() for m in members):
        assert time.monotonic() < deadline, [m.assignment() for m in members]
        for m in members:
            m.poll(timeout_ms=50)


def test_members_stopping_together_leave_the_group_at_once(kafka) -> None:  # noqa: ANN001
    bus = KafkaBus([kafka.bootstrap])
    topic = f"close-{uuid.uuid4().hex[:8]}"
    bus.ensure_topics([topic])
    group = f"g-{topic}"
    rng = random.Random(7)
    for _ in range(4):
        first, second = (KafkaBusConsumer([kafka.bootstrap], group, [topic]) for _ in range(2))
        _until_assigned([first, second], bus.partitions, 60)
        started = time.monotonic()
        leaving = threading.Thread(target=first.close, daemon=True)
        leaving.start()
        # The second polls on while the first leaves (the rebalance reaches it), then stops.
        until = time.monotonic() + rng.uniform(0.0, 1.5)
        while time.monotonic() < until:
            second.poll(timeout_ms=50)
        second.close()
        leaving.join(CLOSE_WAIT_S + 5)
        assert not leaving.is_alive()
        assert time.monotonic() - started < 5.0  # neither waited out a timeout
    # Both left for real: a newcomer holds every partition well before the 10 s after which
    # the broker would drop a member that vanished without leaving.
    newcomer = KafkaBusConsumer([kafka.bootstrap], group, [topic])
    started = time.monotonic()
    _until_assigned([newcomer], bus.partitions, 8)
    newcomer.close()
    assert time.monotonic() - started < 8


def test_a_closed_member_has_unsubscribed_and_holds_nothing(kafka) -> None:  # noqa: ANN001
    bus = KafkaBus([kafka.bootstrap])
    topic = f"close-{uuid.uuid4().hex[:8]}"
    bus.ensure_topics([topic])
    bus.producer().send_many([(topic, f"k{i}", b"v") for i in range(30)])
    member = KafkaBusConsumer([kafka.bootstrap], f"g-{topic}", [topic])
    _until_assigned([member], bus.partitions, 60)
    rd = member._consumer  # noqa: SLF001 - what librdkafka holds when close begins
    seen: list[int] = []
    real_close = rd.close

    def close() -> None:  # the revocation was served before: nothing left to rebalance
        seen.append(len(rd.assignment()))
        real_close()

    member._consumer = type("Spy", (), {  # noqa: SLF001
        "close": staticmethod(close), "unsubscribe": rd.unsubscribe,
        "assignment": rd.assignment, "poll": rd.poll})()
    member.close()
    assert seen == [0]
