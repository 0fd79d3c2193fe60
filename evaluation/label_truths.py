"""Verified labels as the truths of an experiment's served answers, summed per hour.

Every results read swaps the labels in (:func:`relabel_sums`, applied by
:func:`evaluation.online.load_cells`). The always-valid series recomputes the results at up to
a dozen looks, each over a longer window: reading every labeled answer at each look took 2.9 s
of the experiments page's 4 s at 15k labels among 1M predictions. :class:`LabelTruths` reads
them once for the widest window and hands each look the hours inside its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.store.models import Correction, Prediction, PredictionTruth, ServedPrediction
from core.verified_labels import joins, typed_labels_query
from evaluation import aggregation as agg

Rows = list[dict[str, Any]]


def relabel_sums(session: Session, experiment_id: int, start: datetime | None = None,
                 end: datetime | None = None) -> tuple[agg.Accumulator, agg.Accumulator]:
    """Verified labels as the truth of the served answers to their input, in ``[start, end)``:
    the truths they add and those they take out (two accumulators).

    A label is the truth (:mod:`core.verified_labels`) of the answers of the output type it
    was given in (a class name is no truth of a number): where a customer's correction was
    counted, its truth is taken back out of the sums and the label's put in (the correction's
    count stays: the correction rate is what customers did), so a correction an annotator
    rejected no longer makes a right answer wrong, nor one that repeated a wrong answer keeps it
    right. An input whose labels disagree has no truth: its correction stands. A failed
    prediction's truth counts nowhere but in the corrections, as the worker counts it, so a
    label changes nothing there."""
    p, tr, c, sp = Prediction, PredictionTruth, Correction, ServedPrediction
    labels = typed_labels_query(session).subquery()
    # Core rows, streamed (a server-side cursor on PostgreSQL): the ORM would buffer them all.
    rows = session.connection().execute(
        select(p.prediction_id, p.arm, p.candidate, p.shadow, p.slice, p.created_at, p.output,
               p.confidence, p.stages, p.output_type, p.unit_id,
               func.coalesce(p.failed, sp.error), labels.c.label, tr.truth, c.output_type)
        .join(labels, joins(labels, p))
        .outerjoin(sp, sp.prediction_id == p.prediction_id)
        .outerjoin(tr, tr.prediction_id == p.prediction_id)
        .outerjoin(c, c.correction_id == tr.correction_id)
        .where(and_(func.coalesce(p.experiment_id, 0) == experiment_id, p.shadow.is_(False),
                    labels.c.label.is_not(None), *agg.in_window(p.created_at, start, end)))
        .execution_options(stream_results=True, max_row_buffer=100)
    )
    added, taken = agg.Accumulator(), agg.Accumulator()
    for (pid, arm, cand, shadow, slice_, created, output, conf, stages, kind, unit, failed,
         label, corrected, corrected_type) in rows:
        facts = agg.PredictionFacts.of(
            prediction_id=pid, experiment_id=experiment_id, arm=arm, candidate=cand,
            shadow=shadow, slice_=slice_, created_at=created, output=output, confidence=conf,
            stages=stages, output_type=kind, unit_id=unit, error=failed)
        label_type = "number" if kind == "number" else None  # a label is checked as its type
        if corrected is not None:
            if corrected == label and corrected_type == label_type:
                continue  # the correction said what the label says: already counted
            taken.add_truth(facts, corrected, corrected_type)
        added.add_truth(facts, label, label_type)
    return added, taken


@dataclass
class LabelTruths:
    """The label swap of an experiment's hours ``[start, end)``, read once for many reads of
    windows within them (summed per hour: a window of whole hours takes its own exactly).
    ``accuracy``: the online accuracy's counts (:func:`evaluation.label_accuracy.labels_once`),
    which no window changes. The per-unit sums span a unit's hours: they serve the read window
    alone."""

    start: datetime | None
    end: datetime | None
    sums: tuple[agg.Accumulator, agg.Accumulator]  # the truths added, and taken out
    accuracy: Any = None

    def __post_init__(self) -> None:
        self._rows = tuple(acc.rows() for acc in self.sums)

    @classmethod
    def read(cls, session: Session, experiment_id: int, start: datetime | None,
             end: datetime | None, accuracy: Any = None) -> LabelTruths:
        return cls(start, end, relabel_sums(session, experiment_id, start, end), accuracy)

    def within(self, start: datetime | None, end: datetime | None,
               relabelled: list[agg.Accumulator] | None = None) -> tuple[Rows, Rows]:
        """The truth rows added and taken out in the hours ``[start, end)`` (whole hours, within
        the ones read); `relabelled` receives the per-unit side (the read window only)."""
        if not _covers(self.start, self.end, start, end):
            raise ValueError(f"labels read for [{self.start}, {self.end}) asked for "
                             f"[{start}, {end})")
        if relabelled is not None:
            if (start, end) != (self.start, self.end):
                raise ValueError("per-unit figures need the labels of their own window")
            relabelled.extend(self.sums)
        added, taken = self._rows
        return _in_hours(added, start, end), _in_hours(taken, start, end)


def _covers(lo: datetime | None, hi: datetime | None, start: datetime | None,
            end: datetime | None) -> bool:
    return (lo is None or (start is not None and start >= lo)) and \
        (hi is None or (end is not None and end <= hi))


def _in_hours(rows: Rows, start: datetime | None, end: datetime | None) -> Rows:
    return [r for r in rows if (start is None or r["hour"] >= start)
            and (end is None or r["hour"] < end)]
