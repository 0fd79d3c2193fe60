"""SQLAlchemy models for every table abvoc keeps.

There are no foreign keys between event tables on purpose: a correction may arrive before its
prediction, and both must be kept.

A naming convention on the MetaData gives constraints the same names on SQLite and PostgreSQL,
so Alembic migrations stay portable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: Timestamp}


class Candidate(Base):
    """A candidate pipeline: what it is, how it is served, what it promised offline."""

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text, default="")
    pipeline: Mapped[dict[str, Any]] = mapped_column(default=dict)
    backend: Mapped[str] = mapped_column(String(30), default="torch")
    artifacts: Mapped[str] = mapped_column(Text, default="")
    requirements: Mapped[dict[str, Any]] = mapped_column(default=dict)
    offline_results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Retired candidates stay (experiments that ran them keep their rows) but take no new work.
    retired_at: Mapped[datetime | None]


# Statuses in which an experiment owns its traffic scope (serving/experiment_spec.py ACTIVE).
_OWNS_SCOPE = text("status IN ('running', 'paused', 'killed')")


class Experiment(Base):
    """An experiment owns one traffic scope while running; arms, allocation and rules are data.

    A partial unique index lets at most one experiment per scope be running, paused or killed,
    so two concurrent starts cannot both win, whatever the isolation level.
    """

    __tablename__ = "experiments"
    __table_args__ = (
        Index("ux_experiments_active_scope", "scope", unique=True,
              sqlite_where=_OWNS_SCOPE, postgresql_where=_OWNS_SCOPE),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scope: Mapped[str] = mapped_column(String(100), default="default")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    unit: Mapped[str] = mapped_column(String(20), default="user")
    salt: Mapped[str] = mapped_column(String(64))
    arms: Mapped[list[Any]] = mapped_column(default=list)
    allocation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    shadows: Mapped[list[Any]] = mapped_column(default=list)
    canary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    guardrails: Mapped[dict[str, Any]] = mapped_column(default=dict)
    primary_metric: Mapped[str] = mapped_column(String(50), default="correction_rate")
    # The sample per arm its always-valid test is tuned for (None: the default, 5,000).
    expected_sample_per_arm: Mapped[int | None] = mapped_column(BigInteger)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    # When the status and its reason last changed (a start, pause, kill, resume, stop, or an
    # arm's pause or resume while running); null where a store before 0025 did not keep it.
    status_since: Mapped[datetime | None]


class Prediction(Base):
    """One served (or shadow) prediction as the evaluation worker recorded it."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index(None, "experiment_id", "candidate", "slice"),
        Index(None, "created_at"),
        Index(None, "input_hash"),  # the relabel enqueue's twin lookup
    )

    prediction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    experiment_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate: Mapped[str] = mapped_column(String(100))
    arm: Mapped[str | None] = mapped_column(String(100))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    unit_id: Mapped[str | None] = mapped_column(String(200))
    slice: Mapped[str] = mapped_column(String(100), default="all")
    input_hash: Mapped[str] = mapped_column(String(64))
    output: Mapped[str] = mapped_column(Text)
    # The candidate's output type (null: a v1 event, LaTeX): which metrics the output feeds.
    output_type: Mapped[str | None] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # Whether the candidate failed to answer (None: stored before schema 0023, unknown).
    failed: Mapped[bool | None] = mapped_column(Boolean)
    stages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


StoredPrediction = Prediction | Row[Any]
"""A prediction as code that only reads it takes it: the ORM object, or a row of all its columns
(read by the same attribute names, and far cheaper to load by the thousand)."""


class Correction(Base):
    """A customer's correction of one prediction (the voice-of-customer channel)."""

    __tablename__ = "corrections"
    __table_args__ = (Index(None, "prediction_id"),)

    correction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    prediction_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    corrected_output: Mapped[str] = mapped_column(Text)
    # The candidate's output type when it was corrected (null: before types, LaTeX): which
    # online metrics the truth feeds (absolute and squared error for numbers).
    output_type: Mapped[str | None] = mapped_column(String(16))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


AGGREGATE_LABEL_CHARS = 250
"""The longest label an online aggregate row holds: a confusion pair ``["answer","truth"]`` of
two label classes of :data:`core.output_types.MAX_CLASS_CHARS` each, with room for JSON's
escapes."""


class OnlineAggregate(Base):
    """The evaluation worker's additive online statistics, one row per experiment × arm ×
    candidate × shadow × slice × hour × metric × label.

    ``label`` is empty except for per-class metrics (output and truth classes, calibration bins).
    ``sketch`` holds a serialised latency histogram on the ``latency_ms`` rows. Arm is empty for
    shadow copies and for predictions outside an experiment (experiment_id 0).
    """

    __tablename__ = "online_aggregates"

    experiment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    arm: Mapped[str] = mapped_column(String(100), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(100), primary_key=True)
    shadow: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    slice: Mapped[str] = mapped_column(String(100), primary_key=True)
    hour: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    metric: Mapped[str] = mapped_column(String(50), primary_key=True)
    label: Mapped[str] = mapped_column(String(AGGREGATE_LABEL_CHARS), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    sum: Mapped[float] = mapped_column(Float, default=0.0)
    sum_squares: Mapped[float] = mapped_column(Float, default=0.0)
    sketch: Mapped[bytes | None] = mapped_column(LargeBinary)


class ExperimentUnit(Base):
    """Units (users) seen per experiment and slice with their arm: the counts SRM is tested on."""

    __tablename__ = "experiment_units"
    # Each arm's distinct units and when each was first seen, read from the index alone
    # (evaluation.online.units_by_arm) instead of sorting every (slice, unit) row.
    __table_args__ = (Index(None, "experiment_id", "arm", "unit_id", "first_seen"),)

    experiment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slice: Mapped[str] = mapped_column(String(100), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    arm: Mapped[str] = mapped_column(String(100))
    first_seen: Mapped[datetime]


class PredictionTruth(Base):
    """The truth counted for a prediction: the first correction the worker joined to it.

    Its presence is what makes a prediction count as corrected exactly once, whichever of the
    prediction and its corrections arrives first and however many corrections it gets.
    """

    __tablename__ = "prediction_truths"

    prediction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    correction_id: Mapped[str] = mapped_column(String(64))
    truth: Mapped[str] = mapped_column(Text)
    counted_at: Mapped[datetime]
    # The stage the truth blames (``correct`` when right, '' when the stages blame nobody) and
    # the JSON list of stages it was judged among; null: not judged yet (stored before 0032).
    blame: Mapped[str | None] = mapped_column(Text, nullable=True)
    blame_stages: Mapped[str | None] = mapped_column(Text, nullable=True)


class RelabelItem(Base):
    """A prediction queued for annotators: why it was picked, how urgent, who holds it, and the
    verified label it got (``label`` is set only once the item is done: ground truth).

    One input is one item per queue (``input_hash``): the same image predicted twice, or by a
    served arm and its shadow, is labeled once. ``lease_owner``/``lease_until`` are the claim;
    an expired lease makes the item claimable again with no sweeper.
    """

    __tablename__ = "relabel_items"
    __table_args__ = (UniqueConstraint("queue", "prediction_id"),
                      UniqueConstraint("queue", "input_hash"),
                      Index(None, "queue", "status", "priority"),
                      Index(None, "input_hash"))  # one input's items in every queue

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), default="default")
    prediction_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(20), default="open")
    label: Mapped[str | None] = mapped_column(Text)
    annotator: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    labeled_at: Mapped[datetime | None]
    input_hash: Mapped[str | None] = mapped_column(String(64))
    experiment_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate: Mapped[str | None] = mapped_column(String(100))
    slice: Mapped[str | None] = mapped_column(String(100))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    labels_needed: Mapped[int] = mapped_column(Integer, default=1)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    dropped_at: Mapped[datetime | None]  # displaced from its full queue (status `dropped`)
    routed_from: Mapped[int | None] = mapped_column(BigInteger)  # a copy: route_label's source


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes; the relay sends it."""

    __tablename__ = "outbox"
    # Only the rows the relay has still to send, in id order: marking a row sent takes it out
    # of this index instead of moving it within an index of every row (on PostgreSQL the
    # relay's CPU per event fell by a third). Retention reads sent rows by id, oldest first.
    __table_args__ = (Index("ix_outbox_pending", "id", sqlite_where=text("sent_at IS NULL"),
                            postgresql_where=text("sent_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # A relay on SQLite claims its batch before publishing, so two relays never send one row;
    # a claim whose relay died expires at `claimed_until` and the row is sent again.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]


class ServedPrediction(Base):
    """The API's own ledger of prediction ids it issued, written with the PredictionMade event, so
    a correction can be checked (404) before the worker has seen the prediction."""

    __tablename__ = "served_predictions"
    __table_args__ = (Index(None, "experiment_id", "arm", "created_at"),)

    prediction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    # The arm served (empty for shadow copies), its latency and whether it failed: the
    # guardrails' rolling window, shared by every serving process through the store.
    arm: Mapped[str | None] = mapped_column(String(100))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[bool | None] = mapped_column(Boolean)
    # The candidate version that answered (null in rows from before versions were recorded).
    version: Mapped[str | None] = mapped_column(String(50))
    # Why a request served within an experiment is kept out of its results: "forced" (an
    # admin's QA request) or the experiment's status then ("paused", "killed"); null for one
    # counted (and in rows from before the reason was recorded).
    excluded: Mapped[str | None] = mapped_column(String(20))

    @classmethod
    def routed(cls) -> ColumnElement[bool]:
        """Rows of routed requests (within an experiment as its split says, or outside any;
        not an admin's forced QA request, not a shadow copy): the ones that carry a latency.
        The guardrails and the canary read them per experiment and arm."""
        return cls.latency_ms.is_not(None)


class CorrectionRequest(Base):
    """An accepted correction request, by idempotency key: the same request twice is one."""

    __tablename__ = "correction_requests"
    # A keyless request is found again by its body (see feedback.corrections).
    __table_args__ = (Index(None, "prediction_id", "request_hash"),)

    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    correction_id: Mapped[str] = mapped_column(String(64), unique=True)
    prediction_id: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


# The event log's and the relabeling workflow's own tables, on the same metadata.
from core.store.bus_models import (  # noqa: E402
    BusGroup,
    BusMember,
    BusRecord,
    ConsumerOffset,
    ParkedEvent,
    ProcessedEvent,
)
from core.store.relabel_models import (  # noqa: E402
    PredictionInput,
    RelabelLabel,
    RelabelRule,
    RelabelSample,
)
from core.store.service_models import ApiKey, ComponentHeartbeat, SpoolProgress  # noqa: E402

__all__ = [
    "ApiKey",
    "Base",
    "BusGroup",
    "BusMember",
    "BusRecord",
    "Candidate",
    "ComponentHeartbeat",
    "ConsumerOffset",
    "Correction",
    "CorrectionRequest",
    "Experiment",
    "ExperimentMetric",
    "ExperimentUnit",
    "OnlineAggregate",
    "Outcome",
    "OutcomeRequest",
    "OutcomeUnitValue",
    "OutboxEvent",
    "ParkedEvent",
    "Prediction",
    "PredictionInput",
    "PredictionTruth",
    "ProcessedEvent",
    "ServedPrediction",
    "SpoolProgress",
    "RelabelItem",
    "RelabelLabel",
    "RelabelSample",
    "RelabelRule",
]

# The outcome and per-unit tables live in their own module (this one would pass 400 lines);
# importing it here puts them all (unit_sums too) on Base.metadata wherever models are loaded.
from core.store.outcome_models import (  # noqa: E402
    ExperimentMetric,
    Outcome,
    OutcomeRequest,
    OutcomeUnitValue,
)
