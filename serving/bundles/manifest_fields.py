"""Reading typed keys from a manifest's TOML tables: each refusal is a ManifestError (a 400)
that names the key to fix, so a typo or a wrong type never silently drops a setting."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.errors import AbvocError, refuse_unknown
from core.text import text_problem
from serving.bundles.tensors import MAX_DIMENSIONS

MAX_DIMENSION_SIZE = 2**31
"""The largest size a declared input dimension may have (no request could send a larger one)."""


class ManifestError(AbvocError):
    """The manifest or the bundle's files are not what they must be; the message names which."""

    status = 400


def no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    refuse_unknown(data, known, noun="key(s)", known="known keys are", where=where,
                   error=ManifestError)


def table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ManifestError(f"[{key}] must be a table")
    return value


def tables(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ManifestError(f"{key} must be an array of tables ([[{key}]])")
    return value


def string(data: dict[str, Any], key: str, where: str = "", *, required: bool = False) -> str:
    value = get_value(data, key, str, where, required=required)
    if required and not value:
        raise ManifestError(f"{_at(where, key)} must not be empty")
    return value


def identifier(data: dict[str, Any], key: str, where: str, limit: int) -> str:
    """A required name (a tensor's, a stage's) of at most `limit` characters and no control
    characters: requests must be able to send it, and queues and terminals show it."""
    value = string(data, key, where, required=True)
    if len(value) > limit:
        raise ManifestError(f"{_at(where, key)} is {len(value)} characters; the limit is {limit}")
    if (problem := text_problem(value, controls=True)) is not None:
        raise ManifestError(f"{_at(where, key)} {value!r} {problem}")
    return value


def free_text(data: dict[str, Any], key: str, limit: int) -> str:
    """Optional free text (line breaks allowed) that every store takes, at most `limit` long."""
    value = string(data, key) or ""
    if len(value) > limit:
        raise ManifestError(f"{key} is {len(value)} characters; the limit is {limit}")
    if (problem := text_problem(value)) is not None:
        raise ManifestError(f"{key} {problem}")
    return value


def dimensions(data: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    """A declared tensor shape: sizes a request can match (-1 for any), as many as it can have."""
    value = get_value(data, key, list, where, required=True)
    if len(value) > MAX_DIMENSIONS:
        raise ManifestError(f"{_at(where, key)} has {len(value)} dimensions; at most "
                            f"{MAX_DIMENSIONS} are taken")
    if not value or not all(isinstance(d, int) and not isinstance(d, bool)
                            and (d == -1 or 1 <= d <= MAX_DIMENSION_SIZE) for d in value):
        raise ManifestError(f"{_at(where, key)} must be a non-empty list of sizes from 1 to "
                            f"{MAX_DIMENSION_SIZE} or -1 (any size), got {shown(value)}")
    return tuple(value)


def get_value(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "", *,
         required: bool = False) -> Any:
    if key not in data:
        if required:
            raise ManifestError(f"{_at(where, key)} is missing")
        return None
    value = data[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{_at(where, key)} must be a {names}, got {shown(value)}")
    return value


_TOML_KINDS = ((dt.datetime, "date-time"), (dt.date, "date"), (dt.time, "time"))


def shown(value: Any) -> str:
    """A manifest value as its TOML reads (`a TOML date 1979-05-27`), never a Python repr such
    as datetime.date(1979, 5, 27), which a team writing TOML would not recognise."""
    for kind, noun in _TOML_KINDS:
        if isinstance(value, kind):
            return f"a TOML {noun} {_toml(value)}"
    return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value[:20]) + (", ...]" if len(value) > 20
                                                                else "]")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in list(value.items())[:20]) + "}"
    return repr(value)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
