"""The wall clock around a call that reads it itself (a command, a request, `abvoc up`'s task).

The test cannot know the moment the service read, only that it lay between the test's readings
before and after the call. A bucket of that moment (its hour, its UTC day, its ISO week) is the
bucket of `before` or of `after`: one bucket, as exact as a pinned time, unless the call ran
across a boundary. Comparing the service's bucket with one the test took a moment earlier fails
once in a while instead (CI's run across 22:00 read the other hourly row, 705c9d6)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Span:
    """The test's readings of the clock before and after a call (`after` once it returned)."""

    before: datetime
    after: datetime | None = None

    def of(self, bucket: Callable[[datetime], T]) -> list[T]:
        """The buckets a moment of the span falls in, in order: one unless the span crossed a
        boundary. (Calls take seconds, buckets an hour or more: at most two.)"""
        assert self.after is not None, "the span is read once its block has ended"
        first, last = bucket(self.before), bucket(self.after)
        return [first] if first == last else [first, last]


@contextmanager
def wall_clock() -> Iterator[Span]:
    """Reads the clock around the block: the service's own reading inside it lies in between."""
    span = Span(datetime.now(UTC))
    yield span
    span.after = datetime.now(UTC)


def in_one(bucket: Callable[[datetime], object], call: Callable[[datetime], R]) -> R:
    """`call(before)`, run again where it ran across a boundary of `bucket`: the run after the
    boundary reads one bucket throughout, so the caller may compare the service's answer with
    `bucket(before)` exactly. For a call that may repeat (a read)."""
    for _ in range(3):
        with wall_clock() as span:
            result = call(span.before)
        if len(span.of(bucket)) == 1:
            return result
    raise AssertionError("three calls in a row ran across a boundary of the bucket")
