"""Which names a bundle's label output may give its classes (text as core.text takes it,
without control characters either)."""

from __future__ import annotations

from typing import Any

from core.output_types import MAX_CLASS_CHARS
from core.text import text_problem


def classes_problem(classes: Any) -> str | None:
    """Why a label output's `classes` cannot name its answers, or None: each is a distinct,
    visible name of at most MAX_CLASS_CHARS characters (the evaluation counts answers per
    class and per pair of classes in columns of bounded width)."""
    if not isinstance(classes, list) or not classes \
            or not all(isinstance(c, str) and c for c in classes):
        return "must list the label output's classes as strings"
    if len(set(classes)) != len(classes):
        return "must be distinct"
    for name in classes:
        if len(name) > MAX_CLASS_CHARS:
            return (f"{name[:20] + '...'!r} is {len(name)} characters; a class name is at "
                    f"most {MAX_CLASS_CHARS}")
        if not name.strip():
            return f"{name!r} is blank: give each class a visible name"
        if (problem := text_problem(name, controls=True)) is not None:
            return f"{name!r} {problem}"
    return None
