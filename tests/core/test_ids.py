"""Time-ordered ids: standard UUIDv7s in uuid4().hex's form, unique, sorted by creation time."""

from __future__ import annotations

import time
import uuid

from core.events import PREDICTION_MADE, make_event
from core.ids import time_ordered_id


def test_ids_are_uuid7_in_hex_form_and_carry_the_time() -> None:
    before = time.time_ns() // 1_000_000
    value = time_ordered_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert len(value) == 32 and value == parsed.hex
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_are_unique_and_later_ones_sort_after_earlier_ones() -> None:
    first = [time_ordered_id() for _ in range(20_000)]
    time.sleep(0.002)  # the next millisecond at least
    second = [time_ordered_id() for _ in range(100)]
    assert len(set(first + second)) == len(first) + len(second)
    assert max(first) < min(second)
    # within one millisecond the order is left to chance: the 74 random bits vary
    assert len({v[13:] for v in first}) == len(first)


def test_events_get_time_ordered_ids() -> None:
    event = make_event(PREDICTION_MADE, prediction_id="p", candidate="c", input_hash="h",
                       output="x", output_type="text")
    assert uuid.UUID(event["event_id"]).version == 7
