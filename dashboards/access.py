"""Role checks for pages and callbacks, on top of the login's session (see :mod:`.auth`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from core.errors import AbvocError, Forbidden
from dashboards.auth import current_roles


def allowed(roles: frozenset[str]) -> bool:
    return bool(current_roles() & roles)


def require_role(roles: frozenset[str]) -> Callable:
    """A callback decorator: 403 unless the session has one of ``roles``."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not allowed(roles):
                raise Forbidden(f"this page needs the role {' or '.join(sorted(roles))}")
            return fn(*args, **kwargs)

        return wrapped

    return decorate


def whole_number(value: Any, name: str) -> int | None:
    """A callback input that must be a whole number (or empty): 400 otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise AbvocError(f"'{name}' must be a whole number")
    return int(value)
