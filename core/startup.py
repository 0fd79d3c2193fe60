"""Start-up checks: open the store and the bus the settings name, or fail naming the variable."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.bus import Bus, BusUnavailable, open_bus
from core.errors import ConfigError
from core.events import topics
from core.quiet_log import warn_now_and_then
from core.settings import Settings, ensure_secret_key
from core.store import schema
from core.store.db import Database, sqlite_file, store_unreachable
from core.store.request_writer import wait_for_spool

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


def connect(settings: Settings, *, migrate: bool = True, check_bus: bool = True,
            wait_for_store: bool = False) -> Services:
    """Open (and by default migrate) the store, open the bus, and check both are reachable.

    The secret key is settled first (see `ensure_secret_key`): a service without one in
    production refuses to start before it touches anything. With `wait_for_store`, an
    unreachable store is waited for (a server's worker process restarted during an outage, whose
    parent checked the setup at start: exiting would read as a crash loop to the server), and
    so is a request spool folder that cannot take a file.
    """
    settings = ensure_secret_key(settings)
    _check_sqlite_folder(settings)
    db = Database(settings.database_url)
    if wait_for_store:
        _wait_for(db)
        wait_for_spool(settings.database_url, settings.request_spool)
    else:
        db.check()
    try:
        if migrate:
            _migrate(db)
        bus = open_bus(settings, db)
    except SQLAlchemyError as exc:  # the store lost after its check (a server shutting down)
        if not store_unreachable(exc):
            raise
        db.dispose()
        raise db.unreachable(exc) from exc
    if check_bus:
        try:
            bus.check()
            bus.ensure_topics(topics(settings.topic_prefix))
        except BusUnavailable as exc:
            db.dispose()
            raise ConfigError(f"ABVOC_BUS_URL={settings.bus} is unreachable: {exc}") from exc
    return Services(settings, db, bus)


def _migrate(db: Database) -> None:
    """Bring the store to this node's head, unless a newer node migrated it further."""
    if schema.status(db) == schema.AHEAD:  # a newer node migrated the shared store
        log.warning("%s; this node serves on it meanwhile", schema.ahead_note(db))
    else:
        schema.upgrade(db)


def _wait_for(db: Database, first_s: float = 0.5, most_s: float = 5.0) -> None:
    """Check the store until it answers, backing off; a log line when the wait begins and
    about every minute after, not one a try."""
    delay = first_s
    while True:
        try:
            db.check()
            return
        except ConfigError as exc:
            if "unreachable" not in exc.message:  # not a store at all: waiting will not help
                raise
            warn_now_and_then(log, f"{exc.message}; this process waits for it", every_s=60)
        time.sleep(delay)
        delay = min(delay * 2, most_s)


def _check_sqlite_folder(settings: Settings) -> None:
    """A SQLite file outside the data folder must be in a folder that exists: making the
    folders of a mistyped URL gave a process an empty store of its own, where it waited for
    events that went to the real one."""
    path = sqlite_file(settings.database_url)
    if path is None:
        return
    folder, data_dir = Path(path).resolve().parent, settings.data_dir.resolve()
    if folder.exists() or folder == data_dir or data_dir in folder.parents:
        return
    raise ConfigError(f"ABVOC_DATABASE_URL names a SQLite file in {folder}, a folder that "
                      "does not exist: check the URL for a typo, or make the folder first "
                      f"(abvoc makes folders only under ABVOC_DATA_DIR, {data_dir})")
