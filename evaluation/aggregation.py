"""What the worker adds to the online aggregates for each prediction and each joined truth.

Pure accumulation, no I/O: :class:`Accumulator` sums a batch into one row per key so that the
store sees each key once per batch (an upsert may not touch a row twice in one statement).

Every row is keyed by a :class:`Group` (experiment x arm x candidate x shadow x slice x hour,
the hour being the prediction's), a metric and a label. The metrics:

========================  =======  ==========================================================
metric                    label    n / sum / sum_squares
========================  =======  ==========================================================
``predictions``           -        predictions / same / same
``errors``                -        predictions / those that failed
``confidence``            -        with a confidence / sum / sum of squares
``latency_ms``            -        with a latency / sum / sum of squares; ``sketch`` histogram
``units``                 -        units first seen in this experiment and slice (arms only)
``output``                class    predictions answering that class
``corrected``             -        predictions with a joined truth / same
``exact_match``           -        with a truth / outputs equal to it (token by token)
``token_edit_distance``   -        with a truth / sum / sum of squares
``truth``                 class    joined truths of that class, where the output differed
``corrected_output``      class    predictions with a different truth that had answered it
``confusion``             pair     class predictions with a truth, by ``["answer", "truth"]``
``calibration``           bin      with a truth and a confidence in the bin / correct / sum of
                                   confidences
``absolute_error``        -        numbers with a truth / sum of |output - truth| / of squares
``squared_error``         -        numbers with a truth / sum of (output - truth)^2 / of squares
========================  =======  ==========================================================

Beside them, each unit's counts and sums of the built-in metrics per experiment cell (the hour
left out) go to ``unit_sums`` (:data:`UNIT_COLUMNS`), from which the tests take the unit as the
observation where units send several requests (:mod:`evaluation.unit_moments`).

Class metrics are kept for *classification* predictions only: those of a ``label`` candidate or,
for untyped (v1) events, those with no ``stages`` and an output of at most :data:`MAX_LABEL`
characters. A multi-stage pipeline's free-text output (a
LaTeX formula) has no useful class distribution and would add a row per distinct string.

Tokens follow the output type (:mod:`evaluation.token_metrics`): words for ``text``, LaTeX
tokens for ``latex`` and untyped answers. The type is the correction's when it names one (v3),
else the prediction's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from core.output_types import MAX_NUMBER
from core.same_answer import same_output
from core.store.models import AGGREGATE_LABEL_CHARS
from core.times import as_utc
from evaluation.token_metrics import edit_distance

PREDICTIONS = "predictions"
ERRORS = "errors"
CONFIDENCE = "confidence"
LATENCY = "latency_ms"
UNITS = "units"
OUTPUT = "output"
CORRECTED = "corrected"
EXACT_MATCH = "exact_match"
TOKEN_EDIT_DISTANCE = "token_edit_distance"
TRUTH = "truth"
CORRECTED_OUTPUT = "corrected_output"
CALIBRATION = "calibration"
ABSOLUTE_ERROR = "absolute_error"
SQUARED_ERROR = "squared_error"
CONFUSION = "confusion"

MAX_LABEL = 100
CALIBRATION_BINS = 10

# A unit's sums (the ``unit_sums`` columns, in this order): each built-in metric's count and sum
# per unit, for tests that take the unit as the observation (:mod:`evaluation.unit_moments`).
UNIT_COLUMNS = ("predictions", "errors", "corrected", "truths", "exact_sum", "edit_sum",
                "confidence_n", "confidence_sum", "latency_n", "latency_sum", "number_n",
                "abs_sum", "sq_sum")
UNIT_KEYS = ("experiment_id", "arm", "candidate", "shadow", "slice", "unit_id")
(_PREDICTIONS, _ERRORS, _CORRECTED, _TRUTHS, _EXACT, _EDIT, _CONFIDENCE_N, _CONFIDENCE,
 _LATENCY_N, _LATENCY, _NUMBER_N, _ABS, _SQ) = range(len(UNIT_COLUMNS))
# A fresh unit row: counts as integers (the columns' type), sums as floats.
_UNIT_ZERO = tuple(0.0 if c.endswith("sum") else 0 for c in UNIT_COLUMNS)


class Group(NamedTuple):
    """Where a prediction's statistics are summed."""

    experiment_id: int
    arm: str
    candidate: str
    shadow: bool
    slice: str
    hour: datetime


def in_window(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    """SQL conditions keeping ``column`` in ``[start, end)``; none for an open side."""
    return ([column >= start] if start is not None else []) + \
        ([column < end] if end is not None else [])


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a moment falls in (naive moments are taken as UTC)."""
    moment = as_utc(moment)
    # Built, not replace()d: once per event in the worker, and replace's keywords cost more.
    return datetime(moment.year, moment.month, moment.day, moment.hour, tzinfo=UTC)


class PredictionFacts(NamedTuple):
    """The fields of a prediction the aggregates need, from an event or from a stored row (a
    tuple: the worker builds one per prediction, and a frozen dataclass cost twice as much)."""

    prediction_id: str
    group: Group
    output: str
    confidence: float | None
    latency_ms: float | None
    error: bool
    classification: bool
    unit_id: str | None
    output_type: str | None = None

    @classmethod
    def of(
        cls,
        *,
        prediction_id: str,
        experiment_id: int | None,
        arm: str | None,
        candidate: str,
        shadow: bool,
        slice_: str | None,
        created_at: datetime,
        output: str,
        confidence: float | None = None,
        latency_ms: float | None = None,
        error: Any = None,
        stages: dict[str, Any] | None = None,
        unit_id: str | None = None,
        output_type: str | None = None,
    ) -> PredictionFacts:
        group = Group(
            int(experiment_id or 0),
            "" if shadow else (arm or ""),
            candidate,
            bool(shadow),
            slice_ or "all",
            hour_of(created_at),
        )
        return cls(
            prediction_id,
            group,
            output,
            confidence,
            latency_ms,
            bool(error),
            # A typed output is a class only when it is a label (a number or JSON never is,
            # whatever its length); untyped ones (v1, LaTeX) by their shape, as before.
            output_type == "label" if output_type else not stages and len(output) <= MAX_LABEL,
            unit_id,
            output_type,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any], error: Any = None) -> PredictionFacts:
        """From a prediction's store row as the worker builds it (its time already parsed)."""
        return cls.of(
            prediction_id=row["prediction_id"], experiment_id=row["experiment_id"],
            arm=row["arm"], candidate=row["candidate"], shadow=row["shadow"],
            slice_=row["slice"], created_at=row["created_at"], output=row["output"],
            confidence=row["confidence"], latency_ms=row["latency_ms"], error=error,
            stages=row["stages"], unit_id=row["unit_id"], output_type=row["output_type"])


def confusion_label(output: str, truth: str) -> str | None:
    """The ``confusion`` row's label of an (answer, truth) pair; where the pair does not fit
    the column, ``[answer, null]`` (the answer has a truth the table cannot place: it is not
    counted as uncorrected); None when there was no answer (a failed prediction)."""
    if not output:
        return None
    for pair in ([output, truth], [output, None]):
        label = json.dumps(pair, ensure_ascii=False, separators=(",", ":"))
        if len(label) <= AGGREGATE_LABEL_CHARS:
            return label
    return None


def calibration_bin(confidence: float) -> str:
    """Equal-width confidence bin ``0`` .. ``9`` (1.0 falls in the last)."""
    return str(min(int(confidence * CALIBRATION_BINS), CALIBRATION_BINS - 1))


class Accumulator:
    """Sums of one batch, one entry per (group, metric, label); latencies kept raw per group
    until flushed."""

    def __init__(self) -> None:
        self.sums: dict[tuple[Group, str, str], list[float]] = {}
        self.latencies: dict[Group, list[float]] = {}
        self.units: dict[tuple[Any, ...], list[float]] = {}

    def _unit(self, p: PredictionFacts) -> list[float]:
        """The prediction's unit's sums in its cell (the hour left out: a unit's requests
        spread over hours are one observation). A prediction without a unit is its own."""
        g = p.group
        key = (g.experiment_id, g.arm, g.candidate, g.shadow, g.slice,
               p.unit_id or f"prediction:{p.prediction_id}")
        row = self.units.get(key)
        if row is None:
            row = self.units[key] = list(_UNIT_ZERO)
        return row

    def add(self, group: Group, metric: str, value: float = 1.0, label: str = "",
            square: float | None = None) -> None:
        row = self.sums.setdefault((group, metric, label), [0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += value
        row[2] += value * value if square is None else square

    def add_prediction(self, p: PredictionFacts) -> None:
        g, unit = p.group, self._unit(p)
        self.add(g, PREDICTIONS)
        self.add(g, ERRORS, 1.0 if p.error else 0.0)
        unit[_PREDICTIONS] += 1
        if p.error:
            unit[_ERRORS] += 1
        if p.confidence is not None and math.isfinite(p.confidence):
            self.add(g, CONFIDENCE, float(p.confidence))
            unit[_CONFIDENCE_N] += 1
            unit[_CONFIDENCE] += float(p.confidence)
        if p.latency_ms is not None and math.isfinite(p.latency_ms):
            self.latencies.setdefault(g, []).append(float(p.latency_ms))
            unit[_LATENCY_N] += 1
            unit[_LATENCY] += float(p.latency_ms)
        if p.classification and not p.error and len(p.output) <= AGGREGATE_LABEL_CHARS:
            self.add(g, OUTPUT, label=p.output)

    def add_unit(self, group: Group) -> None:
        self.add(group, UNITS)

    def add_truth(self, p: PredictionFacts, truth: str, output_type: str | None = None) -> None:
        """Count a prediction's truth; the caller guarantees once per prediction."""
        g, unit = p.group, self._unit(p)
        if p.error:
            # A failed prediction answered nothing: its correction is a customer's act (the
            # correction rate), but there is no answer to hold against the truth. Counted in
            # `errors`, it is not right (the accuracy bound), and not once more as known wrong.
            self.add(g, CORRECTED)
            unit[_CORRECTED] += 1
            return
        kind = output_type or p.output_type  # tokens: the correction's type, else the answer's
        if output_type == "number":  # only a correction checked as a number is one (v3)
            self._add_error(g, p.output, truth, unit)
        exact = same_output(p.output, truth, kind)
        distance = 0.0 if exact else edit_distance(p.output, truth, kind)
        self.add(g, CORRECTED)
        self.add(g, EXACT_MATCH, 1.0 if exact else 0.0)
        self.add(g, TOKEN_EDIT_DISTANCE, distance)
        unit[_CORRECTED] += 1
        unit[_TRUTHS] += 1
        unit[_EXACT] += 1.0 if exact else 0.0
        unit[_EDIT] += distance
        pair = confusion_label(p.output, truth) if p.classification and not p.error else None
        if pair is not None:
            self.add(g, CONFUSION, label=pair)
        if p.classification and not exact \
                and max(len(truth), len(p.output)) <= AGGREGATE_LABEL_CHARS:
            # Changed classes only: per class, corrected_output and truth are then McNemar's
            # discordant counts (answered L but truth is another / truth L but answered another).
            self.add(g, TRUTH, label=truth)
            self.add(g, CORRECTED_OUTPUT, label=p.output)
        if p.confidence is not None and math.isfinite(p.confidence):
            c = float(p.confidence)
            self.add(g, CALIBRATION, 1.0 if exact else 0.0, calibration_bin(c), square=c)

    def _add_error(self, g: Group, output: str, truth: str, unit: list[float]) -> None:
        """A number's error, when both sides are finite numbers (a failed prediction is not)."""
        answered, true = _number(output), _number(truth)
        if answered is not None and true is not None:
            error = answered - true
            self.add(g, ABSOLUTE_ERROR, abs(error))
            self.add(g, SQUARED_ERROR, error * error)
            unit[_NUMBER_N] += 1
            unit[_ABS] += abs(error)
            unit[_SQ] += error * error

    def rows(self) -> list[dict[str, Any]]:
        """Additive rows, sorted by key (a fixed lock order across workers)."""
        out = [
            {**group._asdict(), "metric": metric, "label": label,
             "n": int(v[0]), "sum": v[1], "sum_squares": v[2]}
            for (group, metric, label), v in self.sums.items()
        ]
        out.sort(key=_sort_key)
        return out

    def unit_rows(self) -> list[dict[str, Any]]:
        """Additive ``unit_sums`` rows of experiments (not of predictions outside any), sorted
        by key; counts as integers."""
        names = (*UNIT_KEYS, *UNIT_COLUMNS)
        return [dict(zip(names, (*key, *values), strict=True))
                for key, values in sorted(self.units.items()) if key[0]]

    def latency_groups(self) -> list[tuple[Group, list[float]]]:
        return sorted(self.latencies.items(), key=lambda kv: _group_sort(kv[0]))


def _number(text: str) -> float | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Beyond 2^53 is not a number answer (core.output_types); a store written before that
    # bound may hold one, whose error's square overflowed the sums (and an int past float
    # range raised here).
    return float(value) if abs(value) <= MAX_NUMBER else None


def _group_sort(g: Group) -> tuple:
    return (g.experiment_id, g.arm, g.candidate, g.shadow, g.slice, g.hour.isoformat())


def _sort_key(row: dict[str, Any]) -> tuple:
    return (row["experiment_id"], row["arm"], row["candidate"], row["shadow"], row["slice"],
            row["hour"].isoformat(), row["metric"], row["label"])


def first_by(rows: Iterable[Any], key: str) -> dict[str, Any]:
    """The first row per value of attribute ``key`` (rows come in the order that decides)."""
    out: dict[str, Any] = {}
    for row in rows:
        out.setdefault(getattr(row, key), row)
    return out
