"""Which text abvoc stores: what every store, JSON encoder and terminal takes. A lone UTF-16
surrogate (JSON's ``"\\ud800"``) cannot be encoded as UTF-8, and PostgreSQL's text refuses a
NUL; either, once stored, breaks every later read of the row, so both are refused where they
arrive (an HTTP field, a bundle's names, a dataset line), naming the field.
"""

from __future__ import annotations

import unicodedata


def text_problem(value: str, *, controls: bool = False) -> str | None:
    """Why `value` cannot be stored as text (with `controls`, as a name: no control
    characters either), or None when it can."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone UTF-16 surrogate such as \\ud800)"
    if controls and any(unicodedata.category(c) == "Cc" for c in value):
        return "must not contain control characters (tabs, line breaks, escapes)"
    return None
