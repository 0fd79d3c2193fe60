"""The request spool when its folder fails it: a segment that cannot be made, an append torn
and not undone, and a worker restarted while the folder cannot take a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core.store.request_writer as request_writer_mod
import core.store.spool as spool_mod
from core.store.db import Database
from core.store.spool import Spool
from core.store.spool_file import SpoolUnavailable, read_records, segments
from tests.core.test_spool import _counts, _path, _unit, sqlite_db  # noqa: F401 - a fixture


def test_a_segment_that_cannot_be_made_leaves_the_spool_writing_where_it_was(
        sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The rotation closed the old segment before opening the new one; when the open failed
    (a folder made read-only, no inodes left), later appends wrote through the closed number,
    into whatever the process opened next: an HTTP answer, the store's own file."""
    spool = Spool(sqlite_db, segment_bytes=200)
    try:
        spool.insert(_unit(0))  # past 200 bytes: the next append rotates
        opened = spool_mod.open_segment

        def refused(*args: object) -> int:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(spool_mod, "open_segment", refused)
        with pytest.raises(SpoolUnavailable) as refusal:
            spool.insert(_unit(1))
        assert refusal.value.status == 503 and ("Retry-After", "2") in refusal.value.headers
        bystander = tmp_path / "bystander"  # takes a closed number, were one left
        fd = os.open(bystander, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            monkeypatch.setattr(spool_mod, "open_segment", opened)
            spool.insert(_unit(2))
            assert spool.flush()
        finally:
            os.close(fd)
        assert bystander.stat().st_size == 0
        assert _counts(_path(sqlite_db)) == (2, 2, 2)  # unit 1 was refused, not half-kept
        written = [g for seg in segments(spool.folder, spool.owner)
                   for _, groups in read_records(seg, 0) for g in groups]
        assert any(params and "p2" in params for _, _, params in written)
    finally:
        spool.close()  # closes cleanly: no closed descriptor closed again


def test_a_torn_append_that_cannot_be_undone_moves_on_to_a_new_segment(
        sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A write that failed half way and whose truncation failed too leaves bytes past the
    segment's known end: a record after them would be unreadable after a crash."""
    spool = Spool(sqlite_db)
    try:
        spool.insert(_unit(0))
        first = segments(spool.folder, spool.owner)

        def torn(fd: int, data: bytes) -> None:
            os.write(fd, data[:10])
            raise OSError(28, "No space left on device")

        def untruncatable(fd: int, size: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(spool_mod, "write_all", torn)
        monkeypatch.setattr(spool_mod.os, "ftruncate", untruncatable)
        with pytest.raises(SpoolUnavailable):
            spool.insert(_unit(1))
        monkeypatch.undo()
        spool.insert(_unit(2))
        assert spool.flush()
        now = segments(spool.folder, spool.owner)
        assert now[-1] not in first  # unit 2 went to a new segment, read whole
        assert [len(groups) for _, groups in read_records(now[-1], 0)] == [3]
        assert _counts(_path(sqlite_db)) == (2, 2, 2)
    finally:
        spool.close()


def test_a_restarted_worker_waits_for_a_spool_folder_that_cannot_take_a_file(
        sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """It raised a ConfigError instead, and granian took the exit for a crash loop and stopped
    the healthy workers too: the whole API was down until the folder was writable again."""
    tries: list[Path] = []
    probe = request_writer_mod._probe

    def read_only_twice(folder: Path) -> None:
        tries.append(folder)
        if len(tries) <= 2:
            raise PermissionError(1, "Operation not permitted")
        probe(folder)

    monkeypatch.setattr(request_writer_mod, "_probe", read_only_twice)
    request_writer_mod.wait_for_spool(sqlite_db.url, True, first_s=0.01)
    assert len(tries) == 3 and tries[0].name == "abvoc.db-spool"
    assert not [p for p in tries[0].iterdir() if p.name.startswith(".probe")]
    request_writer_mod.wait_for_spool(sqlite_db.url, False)  # spool off: nothing to wait for
    assert len(tries) == 3
