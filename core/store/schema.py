"""Schema migrations through Alembic, driven by `abvoc db upgrade|downgrade|current`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from core.errors import AbvocError, ConfigError
from core.store.db import Database, store_unreachable
from core.store.models import Base
from core.text import quoted_names, shown

MIGRATION_LOCK = 0x61627663_6D696772
"""The advisory lock key migrations take on PostgreSQL ("abvc" "migr" in ASCII)."""
_VERSION_TABLE = "alembic_version"  # Alembic's default, which abvoc's env.py keeps


def script_location() -> str:
    """The folder of the migration scripts this abvoc ships."""
    return str(resources.files("migrations"))


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade to `revision`; one below the store's is a mistake said so (Alembic would do
    nothing and say nothing: a downgrade was meant)."""
    now = current(db)
    if now is not None and revision not in ("head", now) and status(db) != AHEAD:
        script = ScriptDirectory.from_config(alembic_config(db))
        # `base` too (every table removed): Alembic did nothing there either, and said the store
        # was at its head.
        below = {r.revision for r in script.iterate_revisions(now, "base")} - {now} | {"base"}
        if revision in below:
            raise AbvocError(f"the store is at revision {now}, past {revision}: to go back, "
                             f"`abvoc db downgrade {revision}`")
    _migrate(db, command.upgrade, revision)


def _refuse_foreign_tables(conn: Connection) -> None:
    """A database abvoc never migrated that holds tables of abvoc's names (another
    application's database, or a store whose `alembic_version` was lost): the first migration
    would fail on them halfway with a driver traceback, so say what is wrong before it starts.
    Read within the migration's lock: another process migrating the same fresh store at once
    has made some tables and no revision yet, which is no foreign schema."""
    names = set(inspect(conn).get_table_names())
    if _VERSION_TABLE in names and conn.execute(
            text(f"SELECT count(*) FROM {_VERSION_TABLE}")).scalar():
        return
    clash = sorted(names & set(Base.metadata.tables))
    if clash:
        raise ConfigError(
            f"the database ABVOC_DATABASE_URL names holds tables named as abvoc's "
            f"({quoted_names(clash)}) but no abvoc schema (no {_VERSION_TABLE} revision): point "
            "ABVOC_DATABASE_URL at abvoc's store or at an empty database")


def downgrade(db: Database, revision: str = "-1") -> None:
    _migrate(db, command.downgrade, revision)


def _migrate(db: Database, step: Callable[[Config, str], None], revision: str) -> None:
    """Run an Alembic step, one process at a time; a revision it cannot reach is the caller's
    to fix (AbvocError).

    Every service migrates as it starts, so several starting at once on a fresh or older
    database would each run the same DDL, and all but one fail (a duplicate `alembic_version`
    type on PostgreSQL). On PostgreSQL the step runs under a session-level advisory lock on
    Alembic's own connection, released only once its transaction has committed, so the next
    process finds the schema at head and has nothing to do. On SQLite the step's transaction
    is a write transaction from its BEGIN (BEGIN IMMEDIATE, see core.store.db), which holds
    the others back the same way."""
    if not revision.strip():  # Alembic asserts on an empty revision: a traceback, not a word
        raise AbvocError("give a revision: 'head', a revision id, or a relative step such as "
                         "-1 (`abvoc db current` shows the store's and the head)")
    failed: CommandError | None = None
    refused: DBAPIError | None = None
    with db.engine.connect() as conn:
        locked = conn.dialect.name == "postgresql"
        if locked:
            conn.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
            conn.commit()
        try:
            with conn.begin():
                if step is command.upgrade:
                    _refuse_foreign_tables(conn)
                cfg = alembic_config(db)
                cfg.attributes["connection"] = conn
                try:
                    step(cfg, revision)
                except CommandError as exc:
                    failed = exc
        except DBAPIError as exc:  # rolled back; a store lost on the way is the caller's to wait on
            if store_unreachable(exc):
                raise
            refused = exc
        finally:
            if locked:
                conn.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
                conn.commit()
    if refused is not None:
        # The driver's words run on to a hint line (psycopg): one line, as every error is.
        reason = " ".join(str(refused.orig or refused).split())
        raise ConfigError(f"cannot migrate to {shown(revision)}: the store refused it "
                          f"({shown(reason, 200, str)}); nothing was changed: give "
                          "ABVOC_DATABASE_URL a user that may create and alter tables there, "
                          "on abvoc's own store")
    if failed is not None:
        # A store a newer abvoc migrated: Alembic's "Can't locate revision" read like a
        # corrupt store; say what it is, as every other command does.
        # Our own words whole (cut, the note lost "with the newer version", its fix); Alembic's
        # quote the revision whole, so they are cut (a pasted file's worth would flood the
        # terminal) and kept on one line (a revision holding a newline split it).
        said = ahead_note(db) if status(db) == AHEAD else (
            "the store is at base (no tables): nothing to downgrade"
            if current(db) is None and step is command.downgrade
            else shown(" ".join(str(failed).split()), 200, str))
        raise AbvocError(f"cannot migrate to {shown(revision)}: {said}")


def current(db: Database) -> str | None:
    """The store's revision (None: not migrated), read from Alembic's table as a plain query:
    every /readyz asks, and Alembic's own reader logged two lines and built a table each time
    (17,000 lines a day per API process under a 10 s probe)."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(_VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
        if len(rows) > 1:  # branches abvoc never makes: Alembic's own words
            return MigrationContext.configure(conn).get_current_revision()
    return rows[0] if rows else None


@dataclass(frozen=True)
class Known:
    """The revisions this process's code knows: its head, and every revision up to it."""

    head: str | None
    revisions: frozenset[str]


@functools.cache
def _known_at(location: str) -> Known:
    script = ScriptDirectory(location)
    return Known(script.get_current_head(),
                 frozenset(r.revision for r in script.walk_revisions()))


def known() -> Known:
    """The revisions of the migration scripts as this process first read them, read once.

    A migration file added on disk under a running process (an in-place package upgrade before
    the restart) is not in the code it runs: read again on each `/readyz`, it made every old
    node "not migrated" at once although the store was at the head their code knows."""
    return _known_at(script_location())


def head(db: Database) -> str | None:
    """This code's head revision (see :func:`known`)."""
    return known().head


def is_current(db: Database) -> bool:
    return current(db) == head(db)


CURRENT, BEHIND, AHEAD = "current", "behind", "ahead"


def status(db: Database) -> str:
    """Where the store's schema stands for this abvoc: at its head, `behind` it (an upgrade
    applies), or `ahead` of it: a newer abvoc migrated the shared store (its revision is unknown
    here). Migrations since 0005 only add (tests/core/test_schema_ahead.py holds new ones to it),
    so an older node keeps working on a newer schema while it waits for its own upgrade."""
    revision, ours = current(db), known()
    if revision == ours.head:
        return CURRENT
    if revision is None or revision in ours.revisions:
        return BEHIND
    return AHEAD


def ahead_note(db: Database) -> str:
    """What an operator should know of a store migrated by a newer abvoc."""
    ours = head(db)
    return (f"the store's schema is at revision {current(db)}, newer than this abvoc knows "
            f"(its head: {ours}): a newer version migrated it; upgrade this node, or move "
            f"the schema back with the newer version (`abvoc db downgrade {ours}`) before "
            "rolling back")
