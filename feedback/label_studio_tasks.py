"""What a Label Studio task file says, read narrowly for an import: the files it names (only
inside the import folder), the label a result holds, and who gave it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import AbvocError


def confined(folder: Path, name: Any, where: str) -> Path:
    """A path named by an import, only if it lies inside the import folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise AbvocError(f"{where}: a file path must be a non-empty string")
    if "://" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise AbvocError(f"{where}: {name!r} must be a path relative to the import folder "
                         "(no URLs, no absolute paths)")
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise AbvocError(f"{where}: {name!r} leads out of the import folder")
    if not path.is_file():
        raise AbvocError(f"{where}: {name!r} does not exist in the import folder")
    return path


def label_text(result: Any, where: str) -> str:
    if not isinstance(result, list):
        raise AbvocError(f"{where}: 'result' must be a list")
    for r in result:
        value = r.get("value") if isinstance(r, dict) else None
        if isinstance(value, dict):
            for key in ("choices", "text"):
                got = value.get(key)
                if isinstance(got, list) and got and isinstance(got[0], str):
                    return got[0]
    raise AbvocError(f"{where}: no 'choices' or 'text' value in the result")


def who_labeled(annotation: dict[str, Any]) -> tuple[str, str]:
    """The annotator as abvoc records a Label Studio label, and as the task names them (a
    label abvoc exported comes back under its own annotator and is not imported again)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    raw = str(who if who is not None else "unknown")[:100]
    return (raw if raw.startswith("labelstudio:") else f"labelstudio:{raw}"[:100]), raw
