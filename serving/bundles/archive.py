"""Bundles arrive as a folder or a `.tar.gz` of one; both are checked before anything is read.

An archive is untrusted: every member is checked while the stream is read, before extraction —
no absolute paths, no `..`, no links (symbolic or hard) that leave the bundle, nothing under a
link and no link through another (archive_links), no devices — and the member count, the
unpacked size and each header's size are capped so a small archive cannot unpack into a huge one
or hold gigabytes of one long name in memory (a decompression bomb stops at the limit, not at
the end of the stream). Extraction then runs with tarfile's own "data" filter as a second line.
A folder gets the same link and size checks, so a bundle never reaches outside itself either
way.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from core.text import shown
from serving.bundles.archive_links import check_links
from serving.bundles.manifest import MANIFEST_NAME, ManifestError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# tarfile reads a member's data in 16 KiB pieces, but a long name's or a pax header's whole in
# one read of its declared size: no bundle needs more than this of either.
MAX_HEADER_BYTES = 64 << 10


@dataclass(frozen=True)
class Limits:
    """What a bundle may hold; the defaults fit models of a few hundred megabytes."""

    max_archive_bytes: int = 512 << 20
    max_unpacked_bytes: int = 2 << 30
    max_members: int = 2000
    # How long loading it may take (its code's imports, its artifacts' sessions) before the
    # registration is refused: a bundle whose import never ends must not hold the request.
    load_seconds: float = 120.0


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path, limits: Limits) -> Path:
    """Extract a checked archive into `dest` (empty); the bundle folder inside it."""
    size = archive.stat().st_size
    if size > limits.max_archive_bytes:
        raise ManifestError(f"{archive.name} is {size} bytes; bundles are limited to "
                            f"{limits.max_archive_bytes} bytes")
    try:
        with gzip.open(archive, "rb") as stream, \
                tarfile.open(fileobj=_HeaderCap(stream), mode="r:") as tar:
            members = _checked_members(tar, limits)
            dest.mkdir(parents=True, exist_ok=True)
            for member in members:
                _extract(tar, member, dest)
    except ManifestError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ManifestError(f"{archive.name} is not a readable .tar.gz: {exc}") from exc
    except RecursionError:
        # tarfile reads each long-name or pax header by calling itself for what follows it: a
        # few hundred in a row (20 KB of gzip) ran out of stack, a 500.
        raise ManifestError(f"{archive.name} chains hundreds of long-name or pax headers before "
                            "a member; a tar writer puts one or two before each") from None
    return bundle_root(dest)


class _HeaderCap:
    """The unpacked stream, refusing a read past MAX_HEADER_BYTES: a few megabytes of gzip
    declaring a gigabyte-long name made tarfile hold all of it in memory (8 GiB of it for a
    5 MB upload), before any member's check could run."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size is None or not 0 <= size <= MAX_HEADER_BYTES:
            raise ManifestError(f"the archive declares a header (a long name or pax header) of "
                                f"{size} bytes; at most {MAX_HEADER_BYTES} bytes are read")
        return self._stream.read(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """One member through tarfile's "data" filter; a refusal names the member by its name in
    the archive and says why, never the server's scratch path (the filter's and the OS's own
    words carry it)."""
    try:
        tar.extract(member, dest, filter="data")
    except tarfile.FilterError as exc:
        why = "links outside the bundle (through the links before it)" \
            if isinstance(exc, tarfile.LinkOutsideDestinationError | tarfile.AbsoluteLinkError) \
            else "would be written outside the bundle" \
            if isinstance(exc, tarfile.OutsideDestinationError | tarfile.AbsolutePathError) \
            else "is not a plain file, folder or link inside the bundle"
        raise ManifestError(f"archive member {shown(member.name)} {why}") from None
    except OSError as exc:
        clash = " (a file of the archive has the name of a folder on its path)" \
            if isinstance(exc, NotADirectoryError | FileExistsError | IsADirectoryError) else ""
        raise ManifestError(f"archive member {shown(member.name)} cannot be unpacked: "
                            f"{exc.strerror or type(exc).__name__}{clash}") from None
    except (ValueError, OverflowError) as exc:
        # A pax header's time past what the system holds (inf, nan, 1e300), a NUL in a name:
        # the OS refuses the value, which was a 500.
        raise ManifestError(f"archive member {shown(member.name)} cannot be unpacked: its "
                            f"header holds a value the system refuses ({exc})") from None


def _checked_members(tar: tarfile.TarFile, limits: Limits) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    files: set[str] = set()
    total = 0
    for member in tar:  # reads headers one at a time, so limits stop a bomb early
        if len(members) >= limits.max_members:
            raise ManifestError(f"the archive has more than {limits.max_members} members")
        path = _member_path(member.name)
        if member.issym():
            _check_symlink(member.name, member.linkname)
        elif member.islnk():
            target = _member_path(member.linkname,
                                  f"hard link {shown(member.name)}: its target")
            if str(target) not in files:
                raise ManifestError(f"archive member {shown(member.name)} is a hard link to "
                                    f"{shown(member.linkname)}, which is not a file of the "
                                    "bundle")
        elif not (member.isfile() or member.isdir()):
            raise ManifestError(f"archive member {shown(member.name)} is not a file or "
                                "folder")
        total += max(member.size, 0)
        if total > limits.max_unpacked_bytes:
            raise ManifestError(f"the archive unpacks to more than {limits.max_unpacked_bytes} "
                                "bytes")
        if member.isfile():
            files.add(str(path))
        members.append(member)
    if not members:
        raise ManifestError("the archive is empty")
    check_links(members)
    return members


def _member_path(name: str, what: str = "archive member") -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("\\") or (path.parts and path.parts[0].endswith(":")):
        raise ManifestError(f"{what} {shown(name)} is an absolute path")
    if ".." in path.parts:
        raise ManifestError(f"{what} {shown(name)} contains '..'")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _check_symlink(name: str, target: str) -> None:
    if PurePosixPath(target).is_absolute():
        raise ManifestError(f"archive member {shown(name)} links to the absolute path "
                            f"{shown(target)}")
    joined = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if joined == ".." or joined.startswith("../") or os.path.isabs(joined):
        raise ManifestError(f"archive member {shown(name)} links to {shown(target)}, "
                            "outside the bundle")


def check_folder(folder: Path, limits: Limits) -> None:
    """Refuse a folder whose links leave it, or that exceeds the limits."""
    root = folder.resolve()
    count = total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath) / entry
            rel = path.relative_to(folder)
            count += 1
            if count > limits.max_members:
                raise ManifestError(f"the bundle has more than {limits.max_members} files")
            if path.is_symlink():
                try:
                    target = path.resolve()
                except (RuntimeError, OSError):  # 3.11 raises RuntimeError for a loop
                    raise ManifestError(f"bundle file {str(rel)!r} is a link that leads round "
                                        "in a loop") from None
                if not target.is_relative_to(root):
                    raise ManifestError(f"bundle file {str(rel)!r} links to {os.readlink(path)!r}"
                                        ", outside the bundle")
                if not target.exists():
                    raise ManifestError(f"bundle file {str(rel)!r} is a broken link")
                if target.is_dir():
                    # Registering copies what links point to: a link to a folder above it
                    # would copy without end.
                    raise ManifestError(f"bundle file {str(rel)!r} links to a folder; "
                                        "link files only, or copy the folder in")
            elif not (path.is_file() or path.is_dir()):
                raise ManifestError(f"bundle file {str(rel)!r} is not a file or folder")
            if path.is_file():  # a link's target counts each time: each becomes a copy
                total += path.stat().st_size
                if total > limits.max_unpacked_bytes:
                    raise ManifestError(f"the bundle holds more than {limits.max_unpacked_bytes}"
                                        " bytes")


def bundle_root(folder: Path) -> Path:
    """The folder holding `candidate.toml`: the top, or its only sub-folder (a tarred folder)."""
    if (folder / MANIFEST_NAME).is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() \
            and (entries[0] / MANIFEST_NAME).is_file():
        return entries[0]
    raise ManifestError(f"the bundle has no {MANIFEST_NAME} at its top level (or in its one "
                        "top-level folder)")
