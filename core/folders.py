"""Folders the settings name (the data folder, the model store): checked when read, so a path
that can never be a folder fails at start-up naming its setting, and checked writable before
work that writes there, so a read-only store fails before a training run rather than after."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from core.errors import ConfigError

MODEL_STORE = "the model store (ABVOC_MODEL_STORE, by default <data_dir>/models)"


def folder_setting(text: str, named: str) -> Path:
    """The folder a setting names: one that exists must be a folder, and one that is missing
    must be makeable (no file in its way)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{named} names {text!r}, which is not a folder: name a "
                          "folder (it is made if missing)")
    if blocker := next((p for p in path.parents if p.exists() and not p.is_dir()), None):
        raise ConfigError(f"{named} names {text!r}, which cannot be made: {blocker} "
                          "is a file, not a folder")
    return path


def unwritable(path: Path) -> str | None:
    """Why nothing can be written under `path`, or None: a folder is made (and removed) in its
    nearest existing ancestor, so nothing is left behind either way."""
    where = Path(path).expanduser().absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        if not where.is_dir():
            raise NotADirectoryError(20, f"{where} is not a folder")
        shutil.rmtree(tempfile.mkdtemp(prefix=".abvoc-probe.", dir=where))
    except OSError as exc:
        return f"{exc.strerror or exc} in {where}"
    return None


def check_writable(path: Path, named: str = MODEL_STORE) -> None:
    """ConfigError naming the folder when nothing can be written under it: 503 on the API,
    since the service's set-up, not the request, is at fault."""
    if problem := unwritable(path):
        raise _cannot_write(named, path, problem)


def scratch_folder(folder: Path, prefix: str, named: str = MODEL_STORE) -> Path:
    """A new scratch folder inside `folder` (made if missing), or check_writable's ConfigError
    when it cannot be made: the write itself is the check, no probe first."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    except OSError as exc:
        raise _cannot_write(named, folder, str(exc.strerror or exc)) from None


def _cannot_write(named: str, path: Path, problem: str) -> ConfigError:
    return ConfigError(f"{named} cannot be written: {path}: {problem}; make it writable or "
                       "choose a folder that is", status=503)
