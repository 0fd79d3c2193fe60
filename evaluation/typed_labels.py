"""Verified labels by output type: a label is the truth only of answers of the type it was given
in.

An annotator labels an item in the output type of the candidate whose prediction it holds (a
class name for a ``label`` candidate, a number for a ``number`` one, LaTeX for an untyped one:
``feedback.annotation.output_kind``). Inputs are shared: one image may be answered by a label
candidate in one experiment and by a number candidate in another, and
:mod:`core.verified_labels` groups labels by input alone. Joined by input alone, a class name
became the "truth" of a number (always wrong). Here each label carries its item's type: the
output type its prediction was stored with (null: untyped, LaTeX), or for an item with no stored
prediction (an imported image) the type of its candidate's newest version; labels agree or
conflict within one type, and join the predictions of that type only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.orm import Session, aliased

from core.output_types import OutputKind
from core.store.models import Candidate, Prediction, RelabelItem
from core.verified_labels import DONE, input_key

UNTYPED = "latex"
"""The type of an answer stored without one (a v1 event, a LaTeX pipeline), as a candidate
without a declared output type answers."""


def answer_type(p: Any = Prediction) -> ColumnElement[str]:
    """A stored prediction's output type, untyped ones as :data:`UNTYPED`."""
    return func.coalesce(p.output_type, UNTYPED)


def _candidate_types(session: Session) -> dict[str, str]:
    """Each candidate's output type, its newest version's (a few rows: the registry)."""
    out: dict[str, str] = {}
    for name, pipeline in session.execute(select(Candidate.name, Candidate.pipeline)
                                          .order_by(Candidate.id)):
        out[name] = OutputKind.of_pipeline(pipeline).type
    return out


def item_type(session: Session) -> ColumnElement[str]:
    """A relabel item's output type: its stored prediction's, else its candidate's."""
    r, served = RelabelItem, aliased(Prediction)
    stored = (select(answer_type(served)).where(served.prediction_id == r.prediction_id)
              .scalar_subquery())
    types = _candidate_types(session)
    by_candidate = case(types, value=r.candidate, else_=UNTYPED) if types else literal(UNTYPED)
    return func.coalesce(stored, by_candidate)


def typed_labels_query(session: Session) -> Select:
    """One row per labeled input and output type: ``input_hash``, ``output_type`` and
    ``label``, the agreed label of its done items of that type, or None when they disagree (a
    conflict, :mod:`core.verified_labels`' rule within one type)."""
    r = RelabelItem
    done = (select(input_key().label("input_hash"), item_type(session).label("output_type"),
                   r.label)
            .where(r.status == DONE, r.label.is_not(None)).subquery())
    agreed = case((func.count(func.distinct(done.c.label)) > 1, None),
                  else_=func.min(done.c.label))
    return (select(done.c.input_hash, done.c.output_type, agreed.label("label"))
            .where(done.c.input_hash.is_not(None))
            .group_by(done.c.input_hash, done.c.output_type))


def joins(labels: Any, p: Any = Prediction) -> ColumnElement[bool]:
    """The condition joining a typed labels subquery to the predictions it is the truth of."""
    return (labels.c.input_hash == p.input_hash) & (labels.c.output_type == answer_type(p))


def typed_labels(session: Session) -> dict[tuple[str, str], str | None]:
    """The truth of every labeled (input, output type): its label, or None for a conflict."""
    return {(h, kind): label for h, kind, label in session.execute(typed_labels_query(session))}
