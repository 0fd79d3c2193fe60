"""Other processes' request spools (core.store.spool): committing what a dead one left, and
waiting until live ones have committed what they hold.

A spool's owner holds its lock file for its whole life, so a lock that can be taken is a dead
owner's. Its taker reads each segment from the offset `spool_progress` says was committed, commits
the rest through its own spool's apply (the same batches, the same progress rows, the same
handling of a unit the store refuses), then removes the files before their progress rows: a
segment whose row went first would be read again from its start.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from core.errors import AbvocError
from core.store.db import Database, sqlite_file
from core.store.spool_file import (
    Entry,
    OwnerLock,
    owners,
    read_records,
    remove_files,
    segments,
    spool_folder,
)

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 2.0
BATCH = 512


def progress(conn: sqlite3.Connection, owner: str | None = None) -> dict[str, int]:
    """Each segment's committed offset (an owner's segments, or every one)."""
    if owner is None:
        rows = conn.execute("SELECT segment, applied FROM spool_progress")
    else:
        rows = conn.execute("SELECT segment, applied FROM spool_progress WHERE segment LIKE ?",
                            (f"{owner}.%",))
    return dict(rows.fetchall())


def _spooled(db: Database) -> tuple[str, Path] | None:
    """The store's file and its spool folder, where a spool writes to it."""
    path = sqlite_file(db.url)
    if path is None or not (folder := spool_folder(path)).is_dir():
        return None
    return path, folder


def recover_dead(folder: Path, own: str, path: str, apply: Callable[[list[Entry]], bool],
                 forget: Callable[[list[str]], None]) -> None:
    """Commit what each dead owner left in the folder (`apply`: False when the store is busy or
    gone, to be tried again at the next look)."""
    for owner in owners(folder):
        if owner == own:
            continue
        lock = OwnerLock.take(folder, owner)
        if lock is None:
            continue
        done = False
        try:
            done = _recover(folder, owner, path, apply, forget)
        except Exception:
            log.exception("committing what spool owner %s left failed; trying again later",
                          owner)
        finally:
            lock.release(remove=done)


def _recover(folder: Path, owner: str, path: str, apply: Callable[[list[Entry]], bool],
             forget: Callable[[list[str]], None]) -> bool:
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        applied = progress(conn, owner)
    files = segments(folder, owner)
    moved = 0
    for seg in files:
        entries = [Entry(seg.name, end, groups)
                   for end, groups in read_records(seg, applied.get(seg.name, 0))]
        for start in range(0, len(entries), BATCH):
            if not apply(entries[start:start + BATCH]):
                return False
        moved += len(entries)
    remove_files(files)
    forget(sorted({*applied, *(seg.name for seg in files)}))
    if moved:
        log.warning("committed %d answers a stopped process had left in the request spool %s",
                    moved, folder)
    return True


def settle(db: Database, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """Wait until every process's spooled rows on this store are committed (up to `timeout_s`);
    whether some are still uncommitted at the end (another writer holds the store)."""
    spooled = _spooled(db)
    return spooled is not None and _wait_for(*spooled, timeout_s)


def _wait_for(path: str, folder: Path, timeout_s: float) -> bool:
    """:func:`settle` on a store whose spool folder is known."""
    sizes = {}
    for seg in segments(folder):
        try:
            sizes[seg.name] = seg.stat().st_size
        except FileNotFoundError:
            continue
    deadline = time.monotonic() + timeout_s
    with closing(sqlite3.connect(path, timeout=timeout_s)) as conn:  # one for every poll
        while sizes:
            applied = progress(conn)
            sizes = {n: s for n, s in sizes.items()
                     if applied.get(n, 0) < s and (folder / n).exists()}
            if not sizes or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
    return bool(sizes)


class RecordPending(AbvocError):
    """The row a request names may still be in a spool while the store is held."""

    status = 503
    headers = (("Retry-After", "1"),)


def await_row(db: Database, model: type, key: object,
              timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """When the row is not in the store yet, wait for every process's spool (:func:`settle`):
    an answer's ledger row another API process gave a moment ago may still be in its spool.
    Raises RecordPending (503, Retry-After) when it is still absent while spooled rows wait for
    a store another writer holds: the caller's receipt says the prediction was answered, so a
    404 ("unknown") would be wrong. A store no spool writes to (PostgreSQL, or the spool off)
    reads nothing here."""
    spooled = _spooled(db)
    if spooled is None:
        return
    with db.reading() as s:
        if s.get(model, key) is not None:
            return
    if not _wait_for(*spooled, timeout_s):
        return  # committed, or never spooled: the caller's lookup says which
    with db.reading() as s:
        if s.get(model, key) is None:
            raise RecordPending(
                f"the record of {key!r} may be among the answers still waiting to be written "
                "to a busy store; send the request again in a moment")
