"""The verified truth of a labeled input, in the output type it was labeled in: one rule for the
dataset export, the online figures and the audited accuracy.

An input (its hash) can be labeled in several queues: an audit item in ``offline-test`` and a
``verification`` item of a customer's correction of the same image, say. Its done items'
labels are its truth when they agree. When they disagree the input is a *conflict*: it has no
truth until someone relabels it, so it is left out of the dataset export and of the audited
accuracy, and both count it as ``conflicts`` (the export used to keep the lowest item id while
the accuracy took the last one, two different truths with no warning). Labels are compared as
stored, the checked text form of the output type.

An annotator labels an item in the output type of the candidate whose prediction it holds (a
class name for a ``label`` candidate, a number for a ``number`` one, LaTeX for an untyped one).
Inputs are shared: one image may be answered by a label candidate in one experiment and by a
number candidate in another. Joined by input alone, a class name became the "truth" of a number
(always wrong), and a per-candidate export lost an input another type's label disagreed with.
So each label carries its item's type: the output type its prediction was stored with (null:
untyped, LaTeX), or for an item with no stored prediction (an imported image) the type of its
candidate's newest version; labels agree or conflict within one type, and are the truth of the
answers of that type only.

:mod:`feedback.export` and :mod:`evaluation` both read it here, since neither may import the
other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from core.output_types import OutputKind
from core.store.models import Candidate, Prediction, RelabelItem

DONE = "done"


def input_key() -> ColumnElement[str | None]:
    """An item's input: its ``input_hash``, or for items from before items kept one, the hash of
    the prediction it was made from (None when neither is known: no input to speak of)."""
    r, p = RelabelItem, Prediction
    served = select(p.input_hash).where(p.prediction_id == r.prediction_id).scalar_subquery()
    return func.coalesce(r.input_hash, served)


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


def labeled_type(session: Session, item: RelabelItem, candidate_type: str) -> str:
    """One item's type, as :func:`item_type` reads it in SQL: its stored prediction's, else
    its candidate's (`candidate_type`)."""
    stored = session.get(Prediction, item.prediction_id) if item.prediction_id else None
    if stored is not None:
        return stored.output_type or UNTYPED
    return candidate_type


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


def verified_label(session: Session, prediction_id: str) -> str | None:
    """The truth annotators gave a stored prediction: its input's agreed label in its output
    type (None: no label, or labels that disagree, and the correction stands).

    :func:`typed_labels_query`'s rule for the one input, read from its own items (by their
    input hash, or for items without one, their predictions of that input): grouping every
    done item to keep one took 0.2 s at 50k labels, at each open of the Inspector."""
    found = session.execute(select(Prediction.input_hash, answer_type())
                            .where(Prediction.prediction_id == prediction_id)).first()
    if found is None:
        return None
    input_hash, kind = found
    r = RelabelItem
    of_input = select(Prediction.prediction_id).where(Prediction.input_hash == input_hash)
    done = (select(r.label, item_type(session).label("output_type"))
            .where(r.status == DONE, r.label.is_not(None),
                   or_(r.input_hash == input_hash,
                       r.input_hash.is_(None) & r.prediction_id.in_(of_input)))
            .subquery())
    labels = set(session.scalars(select(done.c.label).distinct()
                                 .where(done.c.output_type == kind)))
    return labels.pop() if len(labels) == 1 else None


def typed_labels(session: Session) -> dict[tuple[str, str], str | None]:
    """The truth of every labeled (input, output type): its label, or None for a conflict."""
    return {(h, kind): label for h, kind, label in session.execute(typed_labels_query(session))}


def conflicting_labels(session: Session) -> set[tuple[str, str]]:
    """The (input hash, output type) pairs whose done labels disagree (the conflicts alone:
    few, kept in memory)."""
    q = typed_labels_query(session).subquery()
    return {(h, kind) for h, kind in session.execute(
        select(q.c.input_hash, q.c.output_type).where(q.c.label.is_(None)))}
