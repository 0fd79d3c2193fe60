"""The request spool's files: segments of framed records, and each writing process's lock.

A spool folder sits beside its SQLite file (`abvoc.db-spool/`, as SQLite's own `-wal` does).
Each writing process is an owner: it holds `<owner>.lock` with flock for its whole life and
appends to its segments `<owner>.<seq>.seg` in turn. A record is one unit of rows: a 4-byte
length, a 4-byte CRC-32 and a msgpack list of (table, columns, driver parameters). A write cut
short by a crash leaves a tail whose length or CRC does not match; its caller was never
answered, so reading stops there. A lock that can be taken is a dead owner's: whoever takes it
commits what that owner left (core.store.spool).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from core.errors import AbvocError

HEADER = struct.Struct("<II")
Groups = list[tuple[str, tuple[str, ...], Any]]
"""One unit's rows: (table name, its columns, the driver's parameters for them)."""


@dataclass(slots=True)
class Entry:
    """A unit of rows in a segment, in memory: its own until committed, or read back from a
    dead owner's file."""

    segment: str
    end: int  # the segment's offset just past this record
    groups: Groups
    size: int = 0
    at: float = 0.0  # when it was appended (time.monotonic)


def spool_folder(sqlite_path: str) -> Path:
    return Path(sqlite_path + "-spool")


def encode(groups: Groups) -> bytes:
    body = msgpack.packb(groups, use_bin_type=True)
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def read_records(path: Path, start: int) -> Iterator[tuple[int, Groups]]:
    """Each whole record from byte `start` on, with the offset just past it; a torn tail ends
    the reading."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        body = data[pos + HEADER.size:pos + HEADER.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return
        pos += HEADER.size + length
        groups = msgpack.unpackb(body, raw=False)
        yield start + pos, [(name, tuple(columns), params) for name, columns, params in groups]


def segment_name(owner: str, seq: int) -> str:
    return f"{owner}.{seq:06d}.seg"


def open_segment(folder: Path, owner: str, seq: int) -> int:
    """An owner's segment opened for appending (created 0600: it holds answers' rows)."""
    return os.open(folder / segment_name(owner, seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                   0o600)


class SpoolUnavailable(AbvocError):
    """The spool cannot take an answer now (its disk, its folder, a store that stays held)."""

    headers = (("Retry-After", "2"),)

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


def segments(folder: Path, owner: str | None = None) -> list[Path]:
    """An owner's segments (every owner's without one), oldest first."""
    return sorted(folder.glob(f"{owner or '*'}.*.seg"))


def owners(folder: Path) -> list[str]:
    return sorted(p.name[:-len(".lock")] for p in folder.glob("*.lock"))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_private(path: Path, data: bytes) -> None:
    """Append to a file only its owner may read (created 0600, as the segments): it holds
    answers' rows, kept inputs included."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


class OwnerLock:
    """An owner's `.lock` file, flock-held while it lives (or while another process commits what
    it left)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, folder: Path, owner: str) -> OwnerLock:
        """Lock a new owner's file before it has its name, so no one takes it for a dead
        owner's in between."""
        path = folder / f"{owner}.lock"
        making = folder / f"{owner}.lock-new"
        fd = os.open(making, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(making, path)
        return cls(path, fd)

    @classmethod
    def take(cls, folder: Path, owner: str) -> OwnerLock | None:
        """A dead owner's lock, or None while its owner (or another taker) holds it or once
        it is gone."""
        path = folder / f"{owner}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed by its last taker
                raise FileNotFoundError(path)
        except OSError:
            os.close(fd)
            return None
        return cls(path, fd)

    def release(self, *, remove: bool) -> None:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


def remove_files(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
