"""Start-up checks: open the store and the bus the settings name, or fail naming the variable."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.bus import Bus, BusUnavailable, open_bus
from core.errors import ConfigError
from core.events import topics
from core.settings import Settings, ensure_secret_key
from core.store import schema
from core.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The long-lived handles a process needs, built once from settings."""

    settings: Settings
    db: Database
    bus: Bus

    @property
    def topics(self) -> list[str]:
        return topics(self.settings.topic_prefix)

    def close(self) -> None:
        self.bus.close()
        self.db.dispose()


def connect(settings: Settings, *, migrate: bool = True, check_bus: bool = True) -> Services:
    """Open (and by default migrate) the store, open the bus, and check both are reachable.

    The secret key is settled first (see `ensure_secret_key`): a service without one in
    production refuses to start before it touches anything.
    """
    settings = ensure_secret_key(settings)
    db = Database(settings.database_url)
    db.check()
    if migrate:
        if schema.status(db) == schema.AHEAD:  # a newer node migrated the shared store
            log.warning("%s; this node serves on it meanwhile", schema.ahead_note(db))
        else:
            schema.upgrade(db)
    bus = open_bus(settings, db)
    if check_bus:
        try:
            bus.check()
            bus.ensure_topics(topics(settings.topic_prefix))
        except BusUnavailable as exc:
            db.dispose()
            raise ConfigError(f"ABVOC_BUS_URL={settings.bus} is unreachable: {exc}") from exc
    return Services(settings, db, bus)
