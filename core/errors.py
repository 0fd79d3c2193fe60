"""One error type that carries its HTTP status, so every transport maps it once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.text import quoted_names


class AbvocError(Exception):
    """An error a caller can act on: the message says what to fix, `status` how HTTP reports it."""

    status: int = 400
    # Extra response headers (a 429's Retry-After).
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str, *, status: int | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.details is not None:
            body["details"] = self.details
        return body


class ConfigError(AbvocError):
    """A setting is malformed or names something unreachable; raised at start-up."""

    status = 500


class NotFound(AbvocError):
    status = 404


class Forbidden(AbvocError):
    status = 403


class Conflict(AbvocError):
    status = 409


class EventSchemaError(AbvocError):
    """An event does not match its JSON Schema; producers refuse it, consumers park it."""

    status = 400


def refuse_unknown(given: Iterable[str], allowed: Iterable[str], *, noun: str = "field(s)",
                   known: str = "allowed:", where: str = "", none: str = "none is taken",
                   error: type[AbvocError] = AbvocError) -> None:
    """An `error` (a 400) naming the keys of `given` outside `allowed` and then, after `known`,
    those allowed (each list quoted and bounded, core.text.quoted_names), or `none` where none
    is (not "allowed: " and nothing after), where a request, a file or a spec has any; `where`
    (a manifest's table) starts the message."""
    allowed = set(allowed)
    unknown = sorted(set(given) - allowed)
    if unknown:
        taken = f"; {known} {quoted_names(sorted(allowed))}" if allowed else f": {none}"
        raise error(f"{where}: " * bool(where) + f"unknown {noun} {quoted_names(unknown)}{taken}")
