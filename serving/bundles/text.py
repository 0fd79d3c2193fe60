"""Which names a bundle's label output may give its classes (text as core.text takes it,
without control characters either)."""

from __future__ import annotations

from typing import Any

from core.text import text_problem


def classes_problem(classes: Any) -> str | None:
    """Why a label output's `classes` cannot name its answers, or None: each is a distinct,
    non-empty name a correction can carry."""
    if not isinstance(classes, list) or not classes \
            or not all(isinstance(c, str) and c for c in classes):
        return "must list the label output's classes as strings"
    if len(set(classes)) != len(classes):
        return "must be distinct"
    for name in classes:
        if (problem := text_problem(name, controls=True)) is not None:
            return f"{name!r} {problem}"
    return None
