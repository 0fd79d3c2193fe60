"""The request path's writer, and the wait for it in a restarted worker."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from core.errors import ConfigError
from core.quiet_log import warn_now_and_then
from core.store.db import Database, sqlite_file
from core.store.groupcommit import GroupCommitter
from core.store.spool import Spool
from core.store.spool_file import spool_folder

log = logging.getLogger(__name__)


def request_writer(db: Database, spool: bool = True) -> GroupCommitter | Spool:
    """The request path's writer: a spool on a SQLite file (`spool`: unless turned off), else
    a group committer, each answer waiting for its commit."""
    path = sqlite_file(db.url)
    if not spool or path is None:
        return GroupCommitter(db)
    try:
        return Spool(db)
    except OSError as exc:
        raise ConfigError(f"the request spool {spool_folder(path)} cannot be made or locked "
                          f"({exc.strerror or exc}): make the store's folder writable, or set "
                          "ABVOC_REQUEST_SPOOL=off") from None


def wait_for_spool(database_url: str, spool: bool, first_s: float = 0.5,
                   most_s: float = 5.0) -> None:
    """Wait, backing off, until the request spool's folder takes a new file: a worker started
    again while it cannot (a folder made read-only, a full disk) waits as for the store, since
    exiting read as a crash loop to the server, which then stopped the healthy workers too."""
    path = sqlite_file(database_url)
    if not spool or path is None:
        return
    folder, delay = spool_folder(path), first_s
    while True:
        try:
            _probe(folder)
            return
        except OSError as exc:
            warn_now_and_then(log, f"the request spool {folder} cannot take a file "
                                   f"({exc.strerror or exc}); this process waits for it",
                              every_s=60)
        time.sleep(delay)
        delay = min(delay * 2, most_s)


def _probe(folder: Path) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    probe = folder / f".probe-{os.getpid()}"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.suppress(OSError):
        os.unlink(probe)
