"""Which stage of a candidate caused a wrong answer, and the report of those blames.

Two rules, by what a prediction recorded in its ``stages``:

* A bundle whose stages declare an ``answer`` records what each of them answered, the output
  last (:data:`core.output_types.STAGE_ANSWERS`). Against the truth, the first stage whose
  answer is already wrong is blamed: every stage before it answered right, so the error entered
  there (or in a stage between that declares no answer, which is judged with it). Answers are
  compared as the online metrics compare them (:func:`core.same_answer.same_output`:
  the class, the words, the LaTeX tokens, canonical JSON). A ``number`` answer is not right or
  wrong but off by some amount, so the stage that added the most absolute error is blamed.
* The reference OCR pipeline records its stages' intermediate results instead, and
  :func:`evaluation.attribution.attribute` reads them (detector, recognizer, aligner, converter;
  extraction for pages).

A correction's truth and its prediction never change once joined, so the worker judges each
truth as it joins them (:func:`verdict`, stored in ``prediction_truths``) and the report counts
the stored verdicts in SQL. Only a truth a verified label overrides, a relabeled prediction
without a correction, and a truth stored before the verdicts were (schema 0032) are judged as
the report reads them.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select, update
from sqlalchemy.orm import Session

from core.output_types import RIGHT, STAGE_ANSWERS
from core.same_answer import same_output
from core.store.models import Experiment, Prediction, PredictionTruth
from core.verified_labels import joins, typed_labels_query
from evaluation.aggregation import in_window
from evaluation.attribution import STAGES, attribute
from evaluation.candidate_facts import Ref, variant_version
from evaluation.online import hour_window

OCR_KEYS = frozenset({"recognizer", "extraction"})
"""What the OCR pipeline (and the page extraction in front of it) records for its own rules."""
# Rows are read in chunks (a server-side cursor on PostgreSQL): memory stays flat however many
# predictions have a truth, since only the counts are kept.
CHUNK = 100
NOBODY = ""
"""The stored verdict of a truth whose prediction's stages blame nobody (null: not judged)."""


def stage_answers(stages: Any) -> list[tuple[str, str]] | None:
    """(stage, answer) in pipeline order, or None when the prediction recorded none (or
    recorded them in a shape this rule cannot read: it blames nobody then)."""
    entries = stages.get(STAGE_ANSWERS) if isinstance(stages, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    pairs = [(e.get("stage"), e.get("answer")) for e in entries if isinstance(e, dict)]
    if len(pairs) != len(entries) or not all(isinstance(s, str) and isinstance(a, str)
                                             for s, a in pairs):
        return None
    return pairs


def _blame(answers: list[tuple[str, str]] | None, output: Any, stages: Any, truth: Any,
           output_type: str | None) -> str | None:
    if answers is None:
        return attribute(output, stages, truth)
    if not isinstance(output, str) or not isinstance(truth, str):
        return None
    if same_output(output, truth, output_type):
        return RIGHT
    if output_type == "number":
        return _most_error_added(answers, truth)
    return next((stage for stage, answer in answers
                 if not same_output(answer, truth, output_type)), answers[-1][0])


def verdict(output: Any, stages: Any, truth: Any, output_type: str | None
            ) -> tuple[str, str | None]:
    """What a truth's row stores: the stage blamed (or ``correct``) and the JSON list of the
    stages it was judged among, in pipeline order; :data:`NOBODY` and None where the stages say
    nothing this module reads, or nothing it can judge. Never raises: the worker calls it on
    every truth it joins, and stages no rule can parse must not stop the stream."""
    answers = stage_answers(stages)
    if answers is None and not (isinstance(stages, dict) and OCR_KEYS & set(stages)):
        return NOBODY, None
    try:
        stage = _blame(answers, output, stages, truth, output_type)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        stage = None
    if stage is None:
        return NOBODY, None
    names = list(dict.fromkeys(s for s, _ in answers)) if answers else list(STAGES)
    return stage, json.dumps(names)


def _most_error_added(answers: list[tuple[str, str]], truth: str) -> str | None:
    """The stage whose answer moved furthest from the truth (the first stage: its own error)."""
    try:
        want = float(truth)
        errors = [abs(float(answer) - want) for _, answer in answers]
    except ValueError:
        return None
    if not all(math.isfinite(e) for e in errors):
        return None
    added = [errors[0]] + [b - a for a, b in zip(errors, errors[1:], strict=False)]
    return answers[max(range(len(added)), key=added.__getitem__)][0]


def _may_record_stages(stages: Any) -> Any:
    """A filter in SQL that keeps every prediction whose stored stages mention a key the rules
    read (and may keep a few more: Python decides). Most predictions record no stages, and
    decoding each one in Python was nearly all of the report's time."""
    text = cast(stages, Text)
    return or_(*(text.like(f'%"{key}"%') for key in (STAGE_ANSWERS, *sorted(OCR_KEYS))))


def stage_attribution(session: Session, experiment_id: int | None = None, *,
                      since: datetime | None = None, until: datetime | None = None
                      ) -> dict[str, Any]:
    """Error counts and shares by stage, per candidate version and slice (and per candidate
    version overall), over every prediction with a truth (made in the window's whole hours
    where ``since``/``until`` are given, as the divergence report keeps them:
    :func:`evaluation.online.hour_window`); ``experiment_id`` None covers all predictions.
    Each row names its stages in pipeline order: the OCR pipeline's, or a bundle's that
    declare answers. Two arms may run two versions of one name, with other stages: each row
    carries the ``version`` its experiment's arm pinned (None outside experiments).

    Stored verdicts are counted in SQL; the rest (see the module's note) stream through in
    chunks, and only the counts per candidate, slice and stage are kept."""
    p, tr = Prediction, PredictionTruth
    where = []
    if experiment_id is not None:
        # `+ 0` keeps SQLite's planner off the experiment index: from the (fewer) truths, each
        # prediction is one primary-key lookup, instead of a scan of the experiment's rows.
        where.append(p.experiment_id + 0 == experiment_id)
    where += in_window(p.created_at, *hour_window(since, until))
    version_of = _versions(session, experiment_id)
    counts: dict[tuple[Ref, str], Counter] = defaultdict(Counter)
    order: dict[Ref, dict[str, None]] = defaultdict(dict)  # a candidate's stages, in order

    def count(name: str, slice_: str, exp: int | None, arm: str | None, shadow: bool,
              stage: str, names: list[str], n: int = 1) -> None:
        cand = (name, version_of(exp, arm, name, shadow))
        order[cand].update(dict.fromkeys(names))
        counts[(cand, "all")][stage] += n
        if slice_ != "all":  # a prediction without a slice is in "all" only
            counts[(cand, slice_)][stage] += n

    keys = (p.candidate, p.slice, p.experiment_id, p.arm, p.shadow)
    # `|| ''` hides the truths' key from SQLite's planner, so it reads the (fewer) truths
    # first and looks each prediction up by its key, instead of scanning every prediction.
    from_truths = tr.prediction_id.concat("") == p.prediction_id
    stored = (select(*keys, tr.blame, tr.blame_stages, func.count())
              .select_from(tr).join(p, from_truths)
              .where(tr.blame.is_not(None), tr.blame != NOBODY, *where)
              .group_by(*keys, tr.blame, tr.blame_stages))
    for *key, stage, names, n in session.execute(stored):
        count(*key, stage, json.loads(names), n)
    # The truth of an answer: its input's verified label in its output type where there is one
    # (it overrides the customer's correction, core.verified_labels), else the correction. A
    # labeled prediction's stored verdict (the correction's) is taken back, and the label
    # judged; a labeled one without a correction is counted unless it is a shadow's.
    labels = typed_labels_query(session).subquery()
    where.append(_may_record_stages(p.stages))
    columns = (*keys, p.output, p.output_type, p.stages)
    labeled = (select(*columns, labels.c.label, tr.blame)
               .select_from(labels).join(p, joins(labels, p))
               .outerjoin(tr, tr.prediction_id == p.prediction_id)
               .where(labels.c.label.is_not(None),
                      or_(tr.prediction_id.is_not(None), p.shadow.is_(False)), *where))
    unjudged = (select(*columns, tr.truth, tr.blame)
                .select_from(tr).join(p, from_truths)
                .outerjoin(labels, joins(labels, p))
                .where(tr.blame.is_(None), labels.c.label.is_(None), *where))
    for query in (labeled, unjudged):
        # Core rows through the session's connection: the ORM would buffer the whole result.
        rows = session.connection().execute(
            query.execution_options(stream_results=True, max_row_buffer=CHUNK))
        for *key, output, output_type, stages, truth, was in rows:
            if was is not None and was != NOBODY:
                count(*key, was, [], -1)
            stage, names = verdict(output, stages, truth, output_type)
            if names is not None:
                count(*key, stage, json.loads(names))
    rows = []
    for (cand, slice_), c in sorted(counts.items(), key=lambda kv: (
            kv[0][0][0], kv[0][0][1] or "", kv[0][1] != "all", kv[0][1])):
        if not any(c.values()):
            continue  # every verdict it had was a correction's a label overrode elsewhere
        names = list(order[cand])
        errors = sum(c[s] for s in names)
        rows.append({
            "candidate": cand[0], "version": cand[1], "slice": slice_, "stages": names,
            "with_truth": errors + c[RIGHT], "errors": errors,
            "counts": {s: c[s] for s in names},
            "shares": {s: (c[s] / errors if errors else None) for s in names},
            "top_stage": max(names, key=lambda s: c[s]) if errors else None,
        })
    # Every stage the rows name, in the order they first appear (not the OCR stages alone).
    named = dict.fromkeys(s for row in rows for s in row["stages"])
    return {"experiment_id": experiment_id, "stages": list(named), "rows": rows}


def judge_stored(session: Session, after: str = "", limit: int = 1000) -> tuple[int, str]:
    """Store the verdicts of up to ``limit`` truths that have none (counted before schema
    0032), in prediction id order from past ``after``; returns how many were judged (0: none
    is left) and the last one's id, the next call's ``after`` (each call walks on along the
    primary key, so judging them all reads the table once). The verdict is the correction's,
    as the worker stores it; a verified label is applied when the report reads it."""
    p, tr = Prediction, PredictionTruth
    rows = session.execute(
        select(tr.prediction_id, p.output, p.stages, tr.truth, p.output_type)
        .join(p, p.prediction_id == tr.prediction_id, isouter=True)
        .where(tr.prediction_id > after, tr.blame.is_(None))
        .order_by(tr.prediction_id).limit(limit)).all()
    verdicts = []
    for pid, output, stages, truth, output_type in rows:
        stage, names = verdict(output, stages, truth, output_type)
        verdicts.append({"prediction_id": pid, "blame": stage, "blame_stages": names})
    if verdicts:
        session.execute(update(tr), verdicts)  # one UPDATE by primary key, many rows
    return len(rows), rows[-1][0] if rows else after


def _versions(session: Session, experiment_id: int | None
              ) -> Callable[[int | None, str | None, str, bool], str | None]:
    """The version a prediction's variant ran, from its experiment's pins (read once, before
    the rows stream): ``(experiment_id, arm, candidate, shadow) -> version``."""
    query = select(Experiment)
    if experiment_id is not None:
        query = query.where(Experiment.id == experiment_id)
    experiments = {e.id: e for e in session.scalars(query)}
    known: dict[tuple[int | None, str | None, str, bool], str | None] = {}

    def version_of(exp: int | None, arm: str | None, name: str, shadow: bool) -> str | None:
        key = (exp, arm, name, bool(shadow))
        if key not in known:
            experiment = experiments.get(exp) if exp is not None else None
            known[key] = None if experiment is None else variant_version(
                experiment, "" if shadow else (arm or ""), name, bool(shadow))
        return known[key]

    return version_of
