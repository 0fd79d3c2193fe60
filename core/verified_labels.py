"""The verified truth of a labeled input: one rule for the dataset export and the audited accuracy.

An input (its hash) can be labeled in several queues: an audit item in ``offline-test`` and a
``verification`` item of a customer's correction of the same image, say. Its done items'
labels are its truth when they agree. When they disagree the input is a *conflict*: it has no
truth until someone relabels it, so it is left out of the dataset export and of the audited
accuracy, and both count it as ``conflicts`` (the export used to keep the lowest item id while
the accuracy took the last one, two different truths with no warning). Labels are compared as
stored, the checked text form of the output type.

Both :mod:`feedback.export` and :mod:`evaluation` read it here, since neither may import the
other.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from core.store.models import Prediction, RelabelItem

DONE = "done"


def input_key() -> ColumnElement[str | None]:
    """An item's input: its ``input_hash``, or for items from before items kept one, the hash of
    the prediction it was made from (None when neither is known: no input to speak of)."""
    r, p = RelabelItem, Prediction
    served = select(p.input_hash).where(p.prediction_id == r.prediction_id).scalar_subquery()
    return func.coalesce(r.input_hash, served)


def verified_labels_query() -> Select:
    """One row per labeled input: ``input_hash`` and ``label``, its agreed label, or None when
    its done items' labels disagree (a conflict)."""
    r = RelabelItem
    done = (select(input_key().label("input_hash"), r.label)
            .where(r.status == DONE, r.label.is_not(None)).subquery())
    agreed = case((func.count(func.distinct(done.c.label)) > 1, None),
                  else_=func.min(done.c.label))
    return (select(done.c.input_hash, agreed.label("label"))
            .where(done.c.input_hash.is_not(None)).group_by(done.c.input_hash))


def verified_labels(session: Session) -> dict[str, str | None]:
    """The truth of every labeled input: its label, or None for a conflict."""
    return {h: label for h, label in session.execute(verified_labels_query())}


def conflicting_inputs(session: Session) -> set[str]:
    """The input hashes whose done labels disagree (the conflicts alone: few, kept in memory)."""
    q = verified_labels_query().subquery()
    return set(session.scalars(select(q.c.input_hash).where(q.c.label.is_(None))))
