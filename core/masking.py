"""What must never print in full: a Secret wrapper and URL masking, for settings, logs and the
error messages abvoc gives its callers."""

from __future__ import annotations

import hmac
import re
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class Secret:
    """A secret value that never prints: repr, str, f-strings, %-formatting and logging all show
    '****'. It is deliberately not a str, so no string operation can leak it by accident; the
    value comes out only through `reveal()`, at the one place that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('****')"

    def __str__(self) -> str:
        return "****"

    def __format__(self, spec: str) -> str:
        return format("****", spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))

    def masked(self) -> str:
        return "****" if self else ""

    def reveal(self) -> str:
        return self._value



# Query parameters that carry secrets (libpq's `password`, `sslpassword`, a token): the driver
# takes them from the URL as it takes the password in its user part.
_SECRET_PARAMETER = re.compile(r"(?i)([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*")


def mask_url(url: str) -> str:
    """The URL with any password replaced, for printing, in its user part or as a query
    parameter; a URL that does not parse is masked too (everything between the first ':' of
    the user part and the last '@')."""
    return _SECRET_PARAMETER.sub(r"\1***", _mask_userinfo(url))


def _mask_userinfo(url: str) -> str:
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    # A password holding a raw '@' parses as ending at it: mask up to the last '@' instead.
    if rest.split("/", 1)[0].count("@") <= 1:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            pass
    authority, slash, path = rest.partition("/")
    userinfo, at, hostpart = authority.rpartition("@")
    hostpart += slash + path
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{head}{sep}{user}{':***' if colon else ''}@{hostpart}"


def hide_userinfo(url: str) -> str:
    """The URL with its whole user part (name and password) shown as '***', for messages and
    logs about a remote server: a bare token in the user name is as secret as a password."""
    head, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/") if sep else ("", "", url)
    userinfo, at, hostpart = authority.rpartition("@")
    if not at:
        return url
    return f"{head}{sep}***@{hostpart}{slash}{path}"
