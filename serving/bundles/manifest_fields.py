"""Reading typed keys from a manifest's TOML tables: each refusal is a ManifestError (a 400)
that names the key to fix, so a typo or a wrong type never silently drops a setting."""

from __future__ import annotations

from typing import Any

from core.errors import AbvocError


class ManifestError(AbvocError):
    """The manifest or the bundle's files are not what they must be; the message names which."""

    status = 400


def no_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    if unknown := sorted(set(data) - known):
        prefix = f"{where}: " if where else ""
        raise ManifestError(f"{prefix}unknown key(s) {unknown}; known keys are {sorted(known)}")


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


def get_value(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "", *,
         required: bool = False) -> Any:
    if key not in data:
        if required:
            raise ManifestError(f"{_at(where, key)} is missing")
        return None
    value = data[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{_at(where, key)} must be a {names}, got {value!r}")
    return value


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
