"""The service's secret key as kept in the data folder, and the strength a production key needs:
what the settings read and check, apart from how they are loaded."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from core.masking import Secret


def read_key_file(path: Path) -> Secret | None:
    """The key kept in the data folder, if there is one; refused if others may read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"the secret key file {path} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"the secret key file {path} is readable by others; "
                          f"run `chmod 600 {path}` (or delete it to make a new key)")
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"the secret key file {path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"the secret key file {path} is empty; delete it to make a new key")
    return Secret(value)


MIN_SECRET_KEY_BYTES = 32
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_key_strength(key: str) -> None:
    """Refuse a short production key: one receipt (an HMAC of a known id) lets any predict-key
    holder guess a short key offline, then forge receipts and dashboard sessions with it."""
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(f"ABVOC_SECRET_KEY is too short for ABVOC_ENV=production: use at least "
                          f"{MIN_SECRET_KEY_BYTES} random bytes, the same for every process "
                          f"(make one with `{MAKE_A_KEY}`)")
