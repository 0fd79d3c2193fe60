"""What a Label Studio task file says, read narrowly for an import: the files it names (only
inside the import folder), the label a result holds, and who gave it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.errors import AbvocError
from core.events import typed_value
from core.query import PLAIN_DECIMAL, plain_decimal
from core.text import shown, text_problem

ANNOTATOR_PREFIX = "labelstudio:"
MAX_ANNOTATOR = 100
"""The store's width for an annotator's name."""


def confined(folder: Path, name: Any, where: str) -> Path:
    """A path named by an import, only if it lies inside the import folder."""
    if not isinstance(name, str) or not name:
        raise AbvocError(f"{where}: a file path must be a non-empty string")
    if (problem := text_problem(name)) is not None:  # a lone surrogate failed the path's lookup
        raise AbvocError(f"{where}: a file path {problem}")
    if "://" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise AbvocError(f"{where}: {name!r} must be a path relative to the import folder "
                         "(no URLs, no absolute paths)")
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise AbvocError(f"{where}: {name!r} leads out of the import folder")
    if not path.is_file():
        raise AbvocError(f"{where}: {name!r} does not exist in the import folder")
    return path


def label_text(result: Any, where: str, output_type: str) -> str:
    """The one answer an annotation's result gives, as text: the class of a ``choices``
    result, which only a ``label`` item's labels are, or the ``text`` of a textarea. A result
    with several answers (two classes ticked, two texts) is refused, not read as its first:
    an item has one label, and which one the annotator meant cannot be told."""
    if not isinstance(result, list):
        raise AbvocError(f"{where}: 'result' must be a list")
    for r in result:
        value = r.get("value") if isinstance(r, dict) else None
        if not isinstance(value, dict):
            continue
        for key in ("choices", "text"):
            got = value.get(key)
            if not (isinstance(got, list) and got and isinstance(got[0], str)):
                continue
            if key == "choices" and output_type != "label":
                raise AbvocError(f"{where}: a 'choices' result picks a class of a label "
                                 f"candidate, but this item's labels are {output_type}: give "
                                 "the label as text (a textarea's 'text')")
            if len(got) > 1:
                raise AbvocError(f"{where}: the result gives {len(got)} answers "
                                 f"({shown(got, 120)}) for one label: keep the one meant")
            return got[0]
    raise AbvocError(f"{where}: no 'choices' or 'text' value in the result")


def typed_label(text: str, output_type: str) -> Any:
    """An annotator's text as a label of `output_type`; a json output's label is JSON text (a
    string label quoted), so text that does not parse is the annotator's slip, said as such.
    A number is plain ASCII decimal, as the API reads numbers: float() took '1_000' as 1000,
    ' 3 ' as 3 and a full-width '０' as 0, labels the annotator may not have meant."""
    if output_type == "number":
        if (number := plain_decimal(text, signed=True)) is None:
            raise AbvocError(f"{shown(text, 60)} is not a number: write a number label in "
                             f"{PLAIN_DECIMAL} (no spaces, '_', '+' or other scripts' digits)")
        return number
    if output_type != "json":
        return typed_value(text, output_type)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise AbvocError(f"the label {text[:60]!r} is not JSON: a json output's label is "
                         'written as JSON (a string in quotes: "big")') from None


def was_cancelled(annotation: dict[str, Any], where: str) -> bool:
    """Whether the annotator skipped the task: Label Studio writes ``was_cancelled`` as a JSON
    boolean (absent or null: not cancelled). Anything else is refused, not read by its truth:
    ``"no"`` counted the annotation as cancelled and its label was dropped."""
    flag = annotation.get("was_cancelled")
    if flag is None or isinstance(flag, bool):
        return bool(flag)
    raise AbvocError(f"{where}: 'was_cancelled' must be true or false (a JSON boolean, as Label "
                     f"Studio writes it), got {shown(flag, 60)}")


def who_labeled(annotation: dict[str, Any], where: str) -> tuple[str, tuple[str, ...]]:
    """The annotator as abvoc records a Label Studio label, and every name a label of theirs
    may be stored under: as the task names them (a label abvoc exported comes back under its
    own annotator and is not imported again) and as an import before this rule cut it.

    A name too long for the store keeps its start and a digest of the whole: cut short, two
    annotators whose e-mails share their first 88 characters became one, and the second's
    label was skipped as "already labeled by that annotator".

    An annotation that names no annotator (``completed_by`` absent, null, empty, or an object
    without an e-mail or id) is named by its own ``id``, ``labelstudio:annotation-<id>``: all
    were ``labelstudio:unknown``, so a second such annotator's label was skipped as the first's.
    Two anonymous annotations may be one person's, but no id says so; a label stored as
    ``labelstudio:unknown`` before still counts as theirs, so an old import is not applied twice.
    Without an id either the annotation is refused: whose label it is cannot be told."""
    who, field = annotation.get("completed_by"), "completed_by"
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if anonymous := who is None or who == "":
        who, field = annotation.get("id"), "id"
        if who is None or who == "":
            raise AbvocError(f"{where}: no annotator is named: give 'completed_by' (a user id "
                             "or an e-mail) or the annotation's 'id', as Label Studio writes "
                             "them, so that two people's labels are not taken for one's")
    if isinstance(who, bool) or not isinstance(who, str | int):
        if anonymous:
            raise AbvocError(f"{where}: the annotation's 'id' must be an integer or a string")
        raise AbvocError(f"{where}: 'completed_by' must be a user id, an e-mail or an object "
                         "with one of them")
    raw = str(who)
    problem = text_problem(raw, controls=True)
    if problem:
        raise AbvocError(f"{where}: '{field}' {problem}")
    old: tuple[str, ...] = ()
    if anonymous:
        raw, old = f"annotation-{raw}", (f"{ANNOTATOR_PREFIX}unknown",)
    name = raw if raw.startswith(ANNOTATOR_PREFIX) else ANNOTATOR_PREFIX + raw
    if len(name) <= MAX_ANNOTATOR:
        return name, (name, raw, *old)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:MAX_ANNOTATOR - len(digest) - 1]}~{digest}", (name[:MAX_ANNOTATOR], raw, *old)
