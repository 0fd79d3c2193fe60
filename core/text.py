"""Which text abvoc stores: what every store, JSON encoder and terminal takes. A lone UTF-16
surrogate (JSON's ``"\\ud800"``) cannot be encoded as UTF-8, and PostgreSQL's text refuses a
NUL; either, once stored, breaks every later read of the row, so both are refused where they
arrive (an HTTP field, a bundle's names, a dataset line), naming the field. And how a message
echoes a value it was given: shortened (:func:`shown`), so a 100,000-item label or a 5,000-character
field does not come back whole in a 400 body or an error line.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Sized
from typing import Any

SHOWN_CHARS = 80
"""How much of a value a message echoes (what is wrong with it shows within its start)."""


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


def shown(value: Any, limit: int = SHOWN_CHARS, form: Callable[[Any], str] = repr) -> str:
    """`value` as a message echoes it: its `form` (repr; json.dumps for an HTTP client; str
    for another library's message that quotes a value whole), cut to about `limit` characters
    with an ellipsis, its start and its end kept (where a message says what is wrong), and its
    whole size named: a huge value neither floods a terminal or a response nor hides the
    message."""
    text = form(value)
    if len(text) <= limit:
        return text
    size = (f"{len(value)} characters" if isinstance(value, str)
            else f"{len(value)} items" if isinstance(value, Sized)
            else f"{len(text)} characters in all")
    tail = limit // 4
    return f"{text[:limit - tail]}…{text[len(text) - tail:]} ({size})"


def sent(value: Any) -> str:
    """A value an HTTP client sent, as a message echoes it: a string :func:`quoted`, anything
    else as the JSON it came as (null, true, [1.5, 4]), both :func:`shown`; repr printed None,
    True and a list's quotes, Python's words for what no client wrote."""
    if isinstance(value, str):
        return quoted(shown(value, form=str))
    return shown(value, form=lambda v: json.dumps(v, ensure_ascii=False, default=str))


def quoted(name: Any) -> str:
    """A user-chosen name (an arm, a slice, a class) in a sentence, between plain quotes and as
    typed: repr would print an apostrophe in it as ``\\'`` and double a backslash, characters
    its owner never typed and may search for."""
    return f"'{name}'"


def quoted_names(names: Iterable[Any], limit: int = 4 * SHOWN_CHARS) -> str:
    """Names a message lists (an experiment's arms, a request's unknown fields), each
    :func:`quoted` and :func:`shown` (a Python list's repr would print them with its brackets
    and escapes), comma-separated; past about `limit` characters the rest are counted, not
    listed, so 10,000 unknown fields make a short 400 body."""
    listed = [quoted(shown(n, form=str)) for n in names]
    text = ", ".join(listed)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for name in listed:
        size += len(name) + (2 if kept else 0)  # and its ", "
        if size > limit:
            break
        kept.append(name)
    return f"{', '.join(kept)} and {len(listed) - len(kept):,} more"


def percent(share: float, decimals: int = 0) -> str:
    """`share` as a percentage with `decimals`, or as many more as it takes for a share that
    is not 0 to read as one: a 0.1 % canary step read '0%' traffic now, as a paused arm does."""
    while 0 < abs(share) < 1 and decimals < 6 and round(share * 100, decimals) == 0:
        decimals += 1
    return f"{share:.{decimals}%}"
