"""The event bus: one interface, two transports (Kafka, and an embedded log in the SQL store)."""

from core.bus.base import (
    Bus,
    BusUnavailable,
    CommitRefused,
    Consumer,
    Producer,
    Record,
    TopicPartition,
)
from core.bus.factory import open_bus

__all__ = [
    "Bus",
    "BusUnavailable",
    "CommitRefused",
    "Consumer",
    "Producer",
    "Record",
    "TopicPartition",
    "open_bus",
]
