"""A throwaway PostgreSQL 15 server on 127.0.0.1, with a fresh database per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from core.store import schema
from core.store.db import Database
from tests.support.ports import free_port, wait_for_port

PG_BIN = Path(os.environ.get("ABVOC_PG_BIN", "/usr/lib/postgresql/15/bin"))
HEAD_TEMPLATE = "abvoc_head"


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, developers usually do not.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresServer:
    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        """`preload`: server modules loaded at start (e.g. pg_stat_statements for a profile)."""
        self.preload = preload
        if not (PG_BIN / "pg_ctl").exists():
            raise RuntimeError(f"PostgreSQL not found in {PG_BIN}: run scripts/install-system.sh")
        self.workdir = Path(tempfile.mkdtemp(prefix="abvoc-pg-"))
        self.datadir = self.workdir / "data"
        self.port = free_port()
        self._head_migrated = False
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        if self.preload:
            options += f" -c shared_preload_libraries={','.join(self.preload)}"
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-o",
                    options,
                    "-l",
                    str(self.workdir / "server.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        wait_for_port(self.port, 30)
        return self

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, *, migrated: bool = False) -> str:
        """A new database, empty or (``migrated``) at the schema's head; returns its URL.

        A migrated one is a copy of a template this server migrated once: copying takes about
        a tenth of a second, running every migration again about four tenths.
        """
        name = "t_" + uuid.uuid4().hex[:16]
        template = f' TEMPLATE "{self._head_template()}"' if migrated else ""
        self._admin(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, cutting any connection still open: the
        server's files stay small, so stopping it at the end of a session is quick."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _head_template(self) -> str:
        if not self._head_migrated:
            self._admin(f'CREATE DATABASE "{HEAD_TEMPLATE}"')
            database = Database(self.url(HEAD_TEMPLATE))
            schema.upgrade(database)
            database.dispose()  # a template is copied only while nobody is connected to it
            self._head_migrated = True
        return HEAD_TEMPLATE

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (fast mode: open connections are cut, transactions in flight roll
        back) and start it again on the same port and data. Not immediate mode: with this
        server's synchronous_commit=off that would lose the last acknowledged commits."""
        self.halt()
        time.sleep(down_s)
        self.start()

    def halt(self) -> None:
        """Stop the server (fast mode), keeping its data and port for `start()`."""
        self._ctl("-m", "fast", "stop")

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-w",
                                     *args]),
                       check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.workdir, ignore_errors=True)
