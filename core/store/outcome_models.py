"""SQLAlchemy models of outcome metrics: their definitions per experiment, the outcomes the
worker stored, each unit's combined values, and the API's idempotency ledger of outcomes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base

# At most one primary metric per experiment (a partial unique index, so two concurrent
# definitions cannot both be primary).
_IS_PRIMARY = text("is_primary")


class ExperimentMetric(Base):
    """An outcome metric defined on an experiment (core/outcome_metrics.py says what the fields
    mean); outcomes of undefined metrics are refused."""

    __tablename__ = "experiment_metrics"
    __table_args__ = (
        Index("ux_experiment_metrics_primary", "experiment_id", unique=True,
              sqlite_where=_IS_PRIMARY, postgresql_where=_IS_PRIMARY),
    )

    experiment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    combine: Mapped[str] = mapped_column(String(8))
    numerator: Mapped[str | None] = mapped_column(String(50))
    denominator: Mapped[str | None] = mapped_column(String(50))
    guardrail: Mapped[float | None] = mapped_column(Float)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # What a unit that reported none of the metric counts as: "skip" or "zero" (null: a
    # definition from before schema 0029, "skip").
    missing: Mapped[str | None] = mapped_column(String(8))


class Outcome(Base):
    """One outcome as the worker stored it. ``counted_at`` is set, once, when it was added to
    its unit's value; until its prediction (or its unit's first prediction) is known it waits
    with ``counted_at`` null, however late that is. ``arm`` and ``unit_id`` are where it
    counted (``arm`` stays null for one that could not count: a shadow's prediction)."""

    __tablename__ = "outcomes"
    __table_args__ = (
        Index(None, "prediction_id"),
        Index(None, "experiment_id", "unit_id"),
        Index(None, "counted_at"),
    )

    outcome_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    experiment_id: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime]
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    unit_id: Mapped[str | None] = mapped_column(String(200))
    arm: Mapped[str | None] = mapped_column(String(100))
    counted_at: Mapped[datetime | None]


class OutcomeUnitValue(Base):
    """One unit's outcomes of one metric, combined: count, sum, max and the first value (by
    when it happened, then outcome id), so every combine rule reads from the same row and a
    changed definition recounts nothing."""

    __tablename__ = "outcome_unit_values"

    experiment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    arm: Mapped[str] = mapped_column(String(100), primary_key=True)
    metric: Mapped[str] = mapped_column(String(50), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)
    first_value: Mapped[float] = mapped_column(Float)
    first_at: Mapped[datetime]
    first_id: Mapped[str] = mapped_column(String(64))


class OutcomeRequest(Base):
    """An accepted outcome request, by idempotency key: the same request twice is one. Its
    experiment and metric say, before the worker stores the outcome, that the metric has
    outcomes checked against its kind (rows from before revision 0024 leave them null)."""

    __tablename__ = "outcome_requests"
    __table_args__ = (Index(None, "experiment_id", "metric"),)

    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    outcome_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    experiment_id: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str | None] = mapped_column(String(50))



class UnitSums(Base):
    """One unit's sums of the built-in metrics in one experiment cell (arm x candidate x shadow
    x slice), so a test can take the unit, not the
    prediction, as its independent observation: where a unit sends many requests its
    predictions are correlated, and the variance of a per-prediction rate is the delta method's
    over these rows (evaluation/unit_sums.py). A unit without an id is its prediction
    (``prediction:<id>``), as for outcomes."""

    __tablename__ = "unit_sums"
    # Keyed by text: on SQLite the table is its primary key's B-tree, not a rowid table beside
    # an index of that key (one tree to write, not two). On PostgreSQL its pages keep 30 %
    # free: a unit's row is updated at every batch its unit is in, and an update that finds room
    # on its page writes no index entry (HOT); full pages made 95 % of them new index entries
    # and the table three times its size (migration 0031).
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}}

    experiment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    arm: Mapped[str] = mapped_column(String(100), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(100), primary_key=True)
    shadow: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    slice: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    predictions: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    corrected: Mapped[int] = mapped_column(BigInteger, default=0)
    truths: Mapped[int] = mapped_column(BigInteger, default=0)
    exact_sum: Mapped[float] = mapped_column(Float, default=0.0)
    edit_sum: Mapped[float] = mapped_column(Float, default=0.0)
    confidence_n: Mapped[int] = mapped_column(BigInteger, default=0)
    confidence_sum: Mapped[float] = mapped_column(Float, default=0.0)
    latency_n: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum: Mapped[float] = mapped_column(Float, default=0.0)
    number_n: Mapped[int] = mapped_column(BigInteger, default=0)
    abs_sum: Mapped[float] = mapped_column(Float, default=0.0)
    sq_sum: Mapped[float] = mapped_column(Float, default=0.0)

