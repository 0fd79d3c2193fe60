"""A SQLite store on a read-only filesystem: SQLite writes beside its file even to read, so the
store cannot be opened; the error says that, not "unreachable" (which reads as a network fault).
The filesystem is a real read-only bind mount, which needs root (CI runs as root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.store import Database, schema


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path/data` holding a migrated store, seen read-only at the returned folder."""
    data, seen = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    seen.mkdir()
    with Database(f"sqlite:///{data / 'abvoc.db'}") as db:
        schema.upgrade(db)
    mounted = subprocess.run(["mount", "--bind", str(data), str(seen)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a bind mount needs root: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(seen)], check=True)
        yield seen
    finally:
        subprocess.run(["umount", str(seen)], check=True)


def test_a_store_on_a_read_only_filesystem_says_so(read_only_copy: Path) -> None:
    with Database(f"sqlite:///{read_only_copy / 'abvoc.db'}") as db, \
            pytest.raises(ConfigError) as raised:
        db.check()
    message = str(raised.value)
    assert f"SQLite needs to write in {read_only_copy}, even to read" in message
    assert "Read-only file system" in message and "make that folder writable" in message
    assert "unreachable" not in message
