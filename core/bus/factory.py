"""Pick the transport the settings name."""

from __future__ import annotations

from core.bus.base import Bus
from core.settings import Settings
from core.store.db import Database


def open_bus(settings: Settings, db: Database) -> Bus:
    """The Kafka bus for kafka:// URLs, else the embedded log in the given store."""
    if settings.bus.kind == "kafka":
        from core.bus.kafka import KafkaBus

        return KafkaBus(settings.bus.brokers, settings.bus_partitions)
    from core.bus.embedded import EmbeddedBus

    return EmbeddedBus(db, settings.bus_partitions)
