"""What the VOC, inspector and divergence pages read: the stream of corrections and outcomes,
one prediction with everything known about it, and the divergence report.

Plain functions of a :class:`~core.store.db.Database`, as in :mod:`dashboards.data`; the
divergence report and the stage blame are the evaluation functions the HTTP API calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, func, literal, null, or_, select, union_all

from core.store.db import Database
from core.store.models import (
    Correction,
    Experiment,
    Outcome,
    Prediction,
    PredictionTruth,
    RelabelItem,
    ServedPrediction,
)
from core.store.relabel_models import PredictionInput
from core.times import as_utc
from core.verified_labels import verified_label
from dashboards.operations import Names, names
from evaluation.candidate_facts import variant_version
from evaluation.divergence import divergence_report, divergence_with_stages
from evaluation.stage_blame import NOBODY, verdict

PAGE_SIZE = 25
KINDS = ("correction", "outcome")
MAX_QUERY = 200


def divergence(db: Database, experiment_id: int, stages: bool = True) -> dict[str, Any]:
    """``GET /v1/experiments/{id}/divergence`` with its default alpha and tolerance and, as the
    API gives it, its stage attribution (not with ``stages`` False: the CSV tables)."""
    with db.reading() as s:
        return (divergence_with_stages if stages else divergence_report)(s, experiment_id)


def slice_predictions(db: Database, experiment_id: int, slice_: str,
                      limit: int = 10) -> list[dict[str, Any]]:
    """The newest predictions of an experiment in a slice (``all``: any slice), each with the
    version its variant ran (:func:`evaluation.candidate_facts.variant_version`)."""
    p = Prediction
    # `experiment_id + 0`: SQLite would otherwise pick the experiment's index and sort every
    # prediction of the experiment (0.2-0.5 s at 1M) where walking the time index back from the
    # newest finds a running experiment's ten at once (0.1 ms).
    query = select(p.prediction_id, p.candidate, p.arm, p.shadow, p.slice, p.output,
                   p.confidence, p.created_at).where(p.experiment_id + 0 == experiment_id)
    if slice_ != "all":
        query = query.where(p.slice == slice_)
    with db.reading() as s:
        rows = s.execute(query.order_by(p.created_at.desc()).limit(limit)).all()
        experiment = s.get(Experiment, experiment_id)
    return [dict(r._mapping) | {
        "created_at": as_utc(r.created_at),
        "version": variant_version(experiment, r.arm or "", r.candidate, bool(r.shadow))
        if experiment is not None else None} for r in rows]


@dataclass(frozen=True)
class FeedPage:
    """One page of the VOC stream: its rows (newest first), the matching total, the page."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


# SQLite's own lower() folds ASCII letters only: `ÜBER` stays `ÜBER` while the search text is
# folded to `über`, so no non-ASCII capital could ever match. On SQLite both sides go through
# Python's str.lower (registered on the reading connection); PostgreSQL's lower() is Unicode's.
_FOLD = "abvoc_lower"


def _python_lower(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def _fold(s: Any, dialect: str) -> Callable[[Any], Any]:
    """The SQL function that folds a column's case as :meth:`str.lower` folds the search."""
    if dialect != "sqlite":
        return func.lower
    s.connection().connection.dbapi_connection.create_function(
        _FOLD, 1, _python_lower, deterministic=True)
    return getattr(func, _FOLD)


def _like(fold: Callable[[Any], Any], column: Any, text: str) -> Any:
    return fold(column).contains(text.lower(), autoescape=True)


def _shown_as(named: Names, text: str, experiment: Any) -> Any:
    """Rows whose candidate the pages show as a ``name vX`` containing ``text``: the version
    is not a column of the prediction but its experiment's arm's (or shadow's) pin, so these are
    the variants (experiment, arm, candidate, shadow) shown under such a name."""
    p = Prediction
    return or_(false(), *(and_(
        experiment.is_(None) if e == 0 else experiment == e, p.candidate == c,
        p.shadow.is_(True) if shadow else and_(p.shadow.is_(False), p.arm == arm))
        for e, arm, c, shadow in named.versioned(text)))


def _corrections(text: str, fold: Callable[[Any], Any], named: Names) -> Any:
    c, p = Correction, Prediction
    query = (select(literal("correction").label("kind"), c.correction_id.label("id"),
                    c.prediction_id, p.candidate, p.arm, p.shadow, p.output,
                    c.corrected_output.label("report"),
                    null().label("value"), c.comment, c.rating, c.created_at.label("at"),
                    p.experiment_id, null().label("unit_id"))
             .select_from(c).outerjoin(p, p.prediction_id == c.prediction_id))
    if text:
        query = query.where(or_(*(_like(fold, col, text) for col in (
            c.corrected_output, c.comment, c.prediction_id, p.output, p.candidate)),
                                 _shown_as(named, text, p.experiment_id)))
    return query


def _outcomes(text: str, fold: Callable[[Any], Any], named: Names) -> Any:
    o, p = Outcome, Prediction
    query = (select(literal("outcome").label("kind"), o.outcome_id.label("id"),
                    o.prediction_id, p.candidate, p.arm, p.shadow, p.output,
                    o.metric.label("report"),
                    o.value, null().label("comment"), null().label("rating"),
                    o.observed_at.label("at"), o.experiment_id, o.unit_id)
             .select_from(o).outerjoin(p, p.prediction_id == o.prediction_id))
    if text:
        query = query.where(or_(*(_like(fold, col, text) for col in (
            o.metric, o.prediction_id, o.unit_id, p.output, p.candidate)),
                                 _shown_as(named, text, o.experiment_id)))
    return query


def feed(db: Database, text: str = "", kinds: tuple[str, ...] = KINDS, page: int = 1,
         size: int = PAGE_SIZE) -> FeedPage:
    """Corrections and outcome reports, newest first, whose text contains ``text`` (any case):
    the correction, its comment, the prediction's output, ids (an outcome's unit id too), the
    candidate, the metric. Each row names its experiment and (an outcome's) unit, so a search
    that matched a unit id shows where, and its candidate as the pages name it
    (``shown_candidate``: ``name vX`` where two versions of the name served), and a search for
    that shown name finds that version's rows."""
    text = text.strip()[:MAX_QUERY]
    if not set(kinds) & set(KINDS):
        return FeedPage([], 0, 1, 1)
    named = names(db)
    with db.reading() as s:
        fold = _fold(s, db.dialect)
        parts = [q for kind, q in (("correction", _corrections(text, fold, named)),
                                   ("outcome", _outcomes(text, fold, named))) if kind in kinds]
        both = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        total = s.scalar(select(func.count()).select_from(both)) or 0
        pages = max(1, -(-total // size))
        page = min(max(page, 1), pages)
        rows = s.execute(select(both).order_by(both.c.at.desc(), both.c.id)
                         .offset((page - 1) * size).limit(size)).all()
    return FeedPage([dict(r._mapping) | {"at": as_utc(r.at),
                                         "shown_candidate": named.of_prediction(r._mapping)}
                     for r in rows], total, page, pages)


def prediction(db: Database, prediction_id: str) -> dict[str, Any] | None:
    """Everything known about one prediction: the worker's record (or, before the worker saw
    it, the API's ledger entry), its corrections, its truth, its relabels, the stage blamed."""
    with db.reading() as s:
        p = s.get(Prediction, prediction_id)
        served = s.get(ServedPrediction, prediction_id)
        if p is None and served is None:
            return None
        corrections = s.execute(select(Correction).where(
            Correction.prediction_id == prediction_id).order_by(Correction.created_at)).scalars()
        truth = s.get(PredictionTruth, prediction_id)
        labels = s.execute(select(RelabelItem.label, RelabelItem.annotator, RelabelItem.status,
                                  RelabelItem.queue)
                           .where(RelabelItem.prediction_id == prediction_id,
                                  RelabelItem.label.is_not(None))).all()
        out: dict[str, Any] = {
            "prediction_id": prediction_id, "recorded": p is not None,
            "corrections": [{"correction": c.corrected_output, "comment": c.comment,
                             "rating": c.rating, "at": as_utc(c.created_at)} for c in corrections],
            "truth": truth.truth if truth else None,
            "labels": [dict(r._mapping) for r in labels],
        }
        if p is None:
            assert served is not None
            out |= {"candidate": served.candidate, "experiment_id": served.experiment_id,
                    "arm": served.arm, "latency_ms": served.latency_ms,
                    "error": served.error, "failed": served.error,
                    "created_at": as_utc(served.created_at), "version": served.version,
                    "output": None, "stages": {}, "blamed": None}
        else:
            out |= {k: getattr(p, k) for k in ("candidate", "experiment_id", "arm", "shadow",
                                               "slice", "output", "output_type", "confidence",
                                               "latency_ms", "stages", "input_hash",
                                               "failed")}
            out["created_at"] = as_utc(p.created_at)
            out["verified"] = verified_label(s, prediction_id)
            out["input"] = _kept_input(s, prediction_id, p.input_hash)
            out["version"] = served.version if served is not None else None
            if p.experiment_id is None and served is not None and served.experiment_id:
                # Served within an experiment but kept out of its split (a forced-arm QA
                # request, or one served while the experiment was killed or paused): the
                # worker's record has no experiment, the ledger says where it went.
                out["excluded"] = {"experiment_id": served.experiment_id, "arm": served.arm,
                                   "reason": served.excluded}
    out["shown_candidate"] = names(db).of_prediction(out)
    if not out["recorded"]:
        return out
    # As the divergence report judges it: the annotators' agreed label of its input (it
    # overrides the customer's correction, core.verified_labels), else the correction.
    known = out["verified"] if out.get("verified") is not None else out["truth"]
    stage = verdict(out["output"], out["stages"], known, out.get("output_type"))[0] \
        if known is not None else NOBODY
    out["blamed"] = None if stage == NOBODY else stage  # stages no rule reads blame nobody
    return out


def _kept_input(s: Any, prediction_id: str, input_hash: str | None) -> dict[str, Any] | None:
    """The served input kept for annotators (a shadow's is its served twin's, same hash), or
    None once retention has pruned it."""
    kept = s.get(PredictionInput, prediction_id)
    if kept is None and input_hash:
        kept = s.execute(select(PredictionInput).where(PredictionInput.input_hash == input_hash)
                         .limit(1)).scalar()
    return {"kind": kept.kind, "data": kept.data} if kept is not None else None

