"""Where an archive's links lead, judged on the archive's own names before anything is unpacked.

tarfile's "data" filter judges a link by the real path it resolves to, but on the Pythons abvoc
runs on (3.11 before 3.11.13, CVE-2025-4517) that resolution stops early once a path passes
PATH_MAX: links to long folder names chained through each other then pass the filter, and a
member written "through" them lands outside the bundle. Names alone cannot be fooled that way
when no path goes through a link, so a bundle's links must each name a file of the archive,
reached through folders only, and nothing may lie under a link. A bundle needs no more: stored,
its links become copies of their files, and a link to a folder is refused anyway.
"""

from __future__ import annotations

import tarfile
from pathlib import PurePosixPath

from core.text import shown
from serving.bundles.manifest import ManifestError


def member_key(name: str) -> str:
    """A member's path as the archive means it: ``./iris//a`` is ``iris/a``."""
    return "/".join(p for p in PurePosixPath(name).parts if p != ".")


def check_links(members: list[tarfile.TarInfo]) -> None:
    """Refuse a member that lies under a symbolic link, or a link that does not lead to a file
    of the archive through folders alone (`members`' names were checked to stay inside)."""
    links = {member_key(m.name) for m in members if m.issym()}
    files = {member_key(m.name) for m in members if m.isfile() or m.islnk()}
    for member in members:
        parts = member_key(member.name).split("/")
        above = next((a for a in ("/".join(parts[:i]) for i in range(1, len(parts)))
                      if a in links), None)
        if above is not None:
            raise ManifestError(f"archive member {shown(member.name)} lies under "
                                f"{shown(above)}, a link: put files in folders, not links")
    for member in members:
        if member.issym() and _target(member, links) not in files:
            raise ManifestError(f"archive member {shown(member.name)} links to "
                                f"{shown(member.linkname)}, which is not a file of the bundle")


def _target(member: tarfile.TarInfo, links: set[str]) -> str:
    """The member a link names, walked one name at a time from the link's folder; a walk that
    leaves the bundle or passes another link is refused (lexical steps are then real ones)."""
    parts = [p for p in member_key(member.name).split("/")[:-1] if p]
    for step in member.linkname.split("/"):
        if step in ("", "."):
            continue
        if step == "..":
            if not parts:
                raise ManifestError(f"archive member {shown(member.name)} links to "
                                    f"{shown(member.linkname)}, outside the bundle")
            parts.pop()
            continue
        parts.append(step)
        if "/".join(parts) in links:
            raise ManifestError(f"archive member {shown(member.name)} links to "
                                f"{shown(member.linkname)} through the link "
                                f"{shown('/'.join(parts))}: link to a file itself")
    return "/".join(parts)
