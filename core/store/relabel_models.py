"""The relabeling workflow's tables: annotators' acts, enqueue rules, kept inputs, and the
stage samples (symbol crops, relation samples) of the stage datasets.

Kept apart from :mod:`core.store.models` (which imports them, so one metadata holds every table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base, BigId


class RelabelLabel(Base):
    """One annotator's act on an item: a label (with its verdict on the customer's correction,
    ``accept``/``reject``, where there was one), a skip, a flag, or an admin's resolution."""

    __tablename__ = "relabel_labels"
    __table_args__ = (UniqueConstraint("item_id", "annotator", "action"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger)
    annotator: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(10))
    label: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime]


class RelabelRule(Base):
    """The enqueue rules of one scope: ``experiment:<id>``, ``candidate:<name>`` or ``default``
    (core/relabel.py reads them)."""

    __tablename__ = "relabel_rules"

    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class PredictionInput(Base):
    """The input of a served prediction (an image's bytes, or its V2 tensors as JSON), kept so
    annotators can see what the model saw. Written with the prediction, pruned after the input
    retention unless a relabel item holds its input hash or a parked event names it."""

    __tablename__ = "prediction_inputs"
    __table_args__ = (Index(None, "input_hash"), Index(None, "created_at"))

    prediction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    input_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class RelabelSample(Base):
    """What a ``stage:<stage>`` item gives its stage's dataset, one row per sample: a labeled
    symbol crop (``crop``: ``symbol`` is the detected symbol's index, ``image`` the PNG cut
    from the kept input around the recorded box), the input's relation sample (``relations``,
    ``symbol`` -1), or, where neither could be made, ``whole`` with the ``reason``.

    Keyed by item and symbol, so a stage's dataset holds an input once, and a crop once per
    symbol. Rows are rebuilt when the item's truth changes (a verified label)."""

    __tablename__ = "relabel_samples"

    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    symbol: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    prediction_id: Mapped[str] = mapped_column(String(64))
    input_hash: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(Text)
    predicted: Mapped[str | None] = mapped_column(Text)
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    sample: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
