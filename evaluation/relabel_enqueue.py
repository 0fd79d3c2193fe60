"""The enqueue rules applied to the event stream: which predictions become annotation work.

The worker calls :func:`enqueue` in the batch's own transaction (after the rows are stored), so
an item exists exactly when the events that justify it were applied, a replayed batch enqueues
nothing twice, and the request path pays nothing. For every prediction the batch touched (new
predictions, and predictions of new corrections, whichever arrived first) the rules of its scope
(:mod:`core.relabel`; the experiment's, else the candidate's, else the default) decide:

* ``correction`` -> ``verification``: every customer correction, to verify it;
* ``low_confidence`` -> ``training``: a served answer below the confidence threshold;
* ``shadow_disagreement`` -> ``training``: the served answer and a shadow's answer to the same
  request (same experiment, unit and input hash) differ, whichever was stored first;
* ``divergent_slice`` -> ``training``: a share of the served predictions of a slice the
  divergence report flags for the candidate (the report is cached per experiment);
* ``audit`` -> ``offline-test``: a uniform share of served predictions, by a hash of the
  prediction id alone, so it is independent of what the customer did: the unbiased sample;
* ``stage_blame`` -> ``stage:<stage>``: a corrected answer whose error
  :func:`evaluation.stage_blame.verdict` puts on a stage the rules name (a bundle's stage that
  declares its answer, or an OCR stage); the new item gets that stage's samples (symbol crops, a
  relation sample, or the reason there are none, the item then being the whole input:
  :mod:`evaluation.stage_samples`), rebuilt when a verified label arrives.

Items are one per queue and input hash: a second reason for an input joins the item's reasons
and raises its priority. A queue at its quota takes a new item only in place of a less urgent
open one (marked ``dropped``); audit items are never displaced, so the audit stays uniform.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from core import relabel as rules_mod
from core.errors import AbvocError
from core.output_types import RIGHT
from core.relabel import RelabelRules
from core.shadow_twins import own_request
from core.store.db import utcnow
from core.store.models import (
    Correction,
    Experiment,
    Prediction,
    RelabelItem,
    RelabelRule,
    StoredPrediction,
)
from core.store.upsert import dialect_insert, in_values, insert_rows
from evaluation.stage_blame import NOBODY, stage_answers, verdict
from evaluation.stage_samples import store_samples
from evaluation.token_metrics import answers_differ

FlaggedSlices = Callable[[Session, int], set[tuple[str, str]]]
OPEN = ("open", "leased")
FLAGGED_TTL_S = 300.0
_flagged_cache: dict[int, tuple[float, set[tuple[str, str]]]] = {}


def cached_flagged_slices(session: Session, experiment_id: int) -> set[tuple[str, str]]:
    """(candidate, slice) pairs the divergence report flags, recomputed every FLAGGED_TTL_S."""
    from evaluation.divergence import divergence_report

    hit = _flagged_cache.get(experiment_id)
    if hit is not None and time.monotonic() - hit[0] < FLAGGED_TTL_S:
        return hit[1]
    try:
        report = divergence_report(session, experiment_id)
        flagged = {(r["candidate"], r["slice"]) for r in report["slices"]
                   if r.get("flagged") and r["slice"] != "all"}
    except AbvocError:
        flagged = set()
    now = time.monotonic()  # an entry expired only when read: a stopped experiment's stayed
    for stale in [e for e, hit in _flagged_cache.items() if now - hit[0] >= FLAGGED_TTL_S]:
        del _flagged_cache[stale]
    _flagged_cache[experiment_id] = (now, flagged)
    return flagged


# Built once: every batch runs them, and building a statement costs more than running these.
_RULES = select(RelabelRule.__table__.c.scope, RelabelRule.__table__.c.rules)
_SHADOWS = select(Experiment.__table__.c.id, Experiment.__table__.c.shadows).where(
    Experiment.__table__.c.id.in_(bindparam("ids", expanding=True)))


_parsed: dict[str, tuple[dict[str, Any], RelabelRules, dict[str, RelabelRules]]] = {}
"""The last rules read and their parsed forms: a batch that finds them unchanged parses none."""


def load_rules(session: Session) -> Callable[[int | None, str], RelabelRules]:
    """The rules lookup for one batch (the table is small: one row per configured scope)."""
    stored = dict(session.execute(_RULES).all())
    last = _parsed.get("last")
    if last is not None and last[0] == stored:  # unchanged since the last batch: parsed already
        _, default, cache = last
    else:
        default = rules_mod.parse_rules(stored.get("default", {}))
        cache = {}
        _parsed["last"] = (stored, default, cache)

    def rules_for(experiment_id: int | None, candidate: str) -> RelabelRules:
        for scope in ([f"experiment:{experiment_id}"] if experiment_id else []) + [
                f"candidate:{candidate}"]:
            if scope in stored:
                if scope not in cache:
                    cache[scope] = rules_mod.parse_rules(stored[scope], default)
                return cache[scope]
        return default

    return rules_for


def _shadowed(session: Session, experiment_ids: set[int | None]) -> set[int]:
    """The experiments among these that run shadows, the only ones where a request has twins."""
    ids = sorted(i for i in experiment_ids if i is not None)
    return {i for i, shadows in session.execute(_SHADOWS, {"ids": ids}) if shadows} \
        if ids else set()


def _twins(session: Session, preds: list[StoredPrediction], shadowed: set[int]
           ) -> dict[tuple, list[StoredPrediction]]:
    """Stored predictions of the same requests, by (experiment, unit, input hash); only in
    experiments that run shadows."""
    preds = [p for p in preds if p.experiment_id in shadowed]
    hashes = sorted({p.input_hash for p in preds})
    units = sorted({p.unit_id for p in preds if p.unit_id is not None})
    if not hashes or not units:
        return {}
    out: dict[tuple, list[StoredPrediction]] = {}
    # Unit and input together: a popular input sent by many units loads only these requests.
    for p in session.execute(select(*_WHOLE).where(
            in_values(session, Prediction.input_hash, hashes),
            in_values(session, Prediction.unit_id, units))):
        out.setdefault((p.experiment_id, p.unit_id, p.input_hash), []).append(p)
    return out


def _reasons(p: StoredPrediction, rules: RelabelRules, truth: str | None,
             twins: list[StoredPrediction], flagged: set[tuple[str, str]]
             ) -> tuple[StoredPrediction, list[tuple[str, str]]]:
    """The item's served prediction and its (queue, reason) pairs."""
    found: list[tuple[str, str]] = []
    served = p
    if p.shadow:
        twin = next(iter(own_request(p, twins).values()), None)
        if twin is not None and rules.shadow_disagreements and _differ(twin, p, rules):
            found.append((rules_mod.TRAINING, rules_mod.SHADOW_DISAGREEMENT))
        return (twin or p), found
    pid = p.prediction_id
    if truth is not None and rules.corrections:
        found.append((rules_mod.VERIFICATION, rules_mod.CORRECTION))
        stage = _blame(p, truth)
        if stage in rules.stage_datasets:
            found.append((f"{rules_mod.STAGE_PREFIX}{stage}", rules_mod.STAGE_BLAME))
    if rules.low_confidence_below is not None and p.confidence is not None \
            and p.confidence < rules.low_confidence_below:
        found.append((rules_mod.TRAINING, rules_mod.LOW_CONFIDENCE))
    if rules.shadow_disagreements and any(
            _differ(p, t, rules) for t in own_request(p, twins).values()):
        found.append((rules_mod.TRAINING, rules_mod.SHADOW_DISAGREEMENT))
    if (p.candidate, p.slice) in flagged \
            and rules_mod.share_of("divergent", pid) < rules.divergent_slice_rate:
        found.append((rules_mod.TRAINING, rules_mod.DIVERGENT_SLICE))
    if rules_mod.audited(pid, rules.audit_rate):
        found.append((rules_mod.OFFLINE_TEST, rules_mod.AUDIT))
    return served, found


def _differ(served: StoredPrediction, shadow: StoredPrediction, rules: RelabelRules) -> bool:
    """A shadow disagreement: the answers differ as the served candidate's type judges them
    (spacing never counts in text and LaTeX; numbers within the rules' tolerance agree)."""
    return answers_differ(served.output or "", shadow.output or "",
                          served.output_type or shadow.output_type,
                          rules.shadow_number_tolerance)


# Whole predictions as rows of their columns, not ORM objects: the rules only read them, and
# building an object per row cost the worker about a tenth of its time (bench_worker, sampled).
# A prediction the batch itself stored is the same record built from its prepared row.
_WHOLE = tuple(getattr(Prediction, c.key) for c in Prediction.__table__.c)
_Whole = namedtuple("_Whole", [c.key for c in Prediction.__table__.c])


def _may_qualify(r: Mapping[str, Any], rules: RelabelRules, corrected: bool, shadowed: bool,
                 flagged: set[tuple[str, str]]) -> bool:
    """Whether any rule of :func:`_reasons` could fire for this prediction, given as its row (a
    cheap superset: the reasons themselves, twins and blame included, are decided there)."""
    if shadowed and rules.shadow_disagreements:
        return True
    if r["shadow"]:
        return False
    confidence = r["confidence"]
    return (corrected and rules.corrections) \
        or (rules.low_confidence_below is not None and confidence is not None
            and confidence < rules.low_confidence_below) \
        or ((r["candidate"], r["slice"]) in flagged
            and rules_mod.share_of("divergent", r["prediction_id"])
            < rules.divergent_slice_rate) \
        or rules_mod.audited(r["prediction_id"], rules.audit_rate)


def _blame(p: StoredPrediction, truth: str) -> str | None:
    """The stage a wrong answer is blamed on, where the prediction's stages can say: a bundle's
    stage answers, or the OCR pipeline's intermediate results (None when right)."""
    if stage_answers(p.stages) is None and not (
            p.stages and "recognizer" in p.stages and p.output_type in (None, "latex")):
        return None
    stage, _ = verdict(p.output, p.stages, truth, p.output_type)  # stages that do not parse
    return None if stage in (RIGHT, NOBODY) else stage  # blame nobody


def enqueue(session: Session, prediction_ids: set[str], *,
            known: Mapping[str, Mapping[str, Any]] | None = None,
            known_truths: Mapping[str, str] | None = None,
            flagged_slices: FlaggedSlices = cached_flagged_slices) -> int:
    """Apply the rules to the predictions the batch touched; returns the items added.

    `known` holds the rows of the predictions this very batch stored, by id (the worker's
    prepared rows): those are not read back. The others (predictions of the batch's corrections,
    stored before) are loaded whole: a corrected prediction meets the corrections rule anyway.
    With `known_truths` (the earliest correction's output of each known prediction that has
    one, which the worker has just read to join truths), only the others' corrections are
    read here."""
    if not prediction_ids:
        return 0
    known = known or {}
    ids = sorted(prediction_ids)
    truths: dict[str, str] = {}
    unread = ids
    if known_truths is not None:
        truths = {pid: truth for pid, truth in known_truths.items() if pid in known}
        unread = [pid for pid in ids if pid not in known]
    if unread:
        for pid, output in session.execute(
                select(Correction.prediction_id, Correction.corrected_output)
                .where(in_values(session, Correction.prediction_id, unread))
                .order_by(Correction.created_at, Correction.correction_id)):
            truths.setdefault(pid, output)
    rules_for = load_rules(session)
    flagged: dict[int, set[tuple[str, str]]] = {}
    stored = [pid for pid in ids if pid not in known]
    # Rows as mappings: only the few that may qualify become records (building one for every
    # prediction of a batch cost more than the rules themselves).
    candidates = [known[pid] for pid in ids if pid in known]
    if stored:
        candidates += [row._asdict() for row in session.execute(select(*_WHOLE).where(
            in_values(session, Prediction.prediction_id, stored)))]
    shadowed = _shadowed(session, {r["experiment_id"] for r in candidates})
    preds = []
    for r in candidates:
        experiment_id = r["experiment_id"]
        rules = rules_for(experiment_id, r["candidate"])
        if experiment_id and rules.divergent_slice_rate > 0 and experiment_id not in flagged:
            flagged[experiment_id] = flagged_slices(session, experiment_id)
        if _may_qualify(r, rules, r["prediction_id"] in truths, experiment_id in shadowed,
                        flagged.get(experiment_id or 0, set())):
            preds.append(_Whole._make(map(r.get, _Whole._fields)))
    if not preds:
        return 0
    twins = _twins(session, preds, shadowed)
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for p in sorted(preds, key=lambda p: p.prediction_id):
        rules = rules_for(p.experiment_id, p.candidate)
        others = [t for t in twins.get((p.experiment_id, p.unit_id, p.input_hash), [])
                  if t.prediction_id != p.prediction_id]
        served, found = _reasons(p, rules, truths.get(p.prediction_id), others,
                                 flagged.get(p.experiment_id or 0, set()))
        for queue, reason in found:
            spec = wanted.setdefault((queue, served.input_hash), {
                "prediction": served, "rules": rules, "reasons": [],
                "truth": truths.get(p.prediction_id)})
            if reason not in spec["reasons"]:
                spec["reasons"].append(reason)
    return _store(session, wanted)


def _store(session: Session, wanted: dict[tuple[str, str], dict[str, Any]]) -> int:
    if not wanted:
        return 0
    r = RelabelItem
    existing = {(i.queue, i.input_hash): i for i in session.scalars(select(r).where(
        r.queue.in_(sorted({q for q, _ in wanted})),
        in_values(session, r.input_hash, sorted({h for _, h in wanted}))))}
    now = utcnow()
    contenders: dict[tuple[str, int], list[tuple[float, tuple[str, str]]]] = {}
    for key in sorted(wanted):
        spec = wanted[key]
        p, rules = spec["prediction"], spec["rules"]
        item = existing.get(key)
        if item is not None:
            merged = list(dict.fromkeys([*(item.reasons or []), *spec["reasons"]]))
            if merged != list(item.reasons or []):
                item.reasons, item.reason = merged, ",".join(merged)
                item.priority = rules.priority(merged, p.confidence)
            continue
        spec["priority"] = rules.priority(spec["reasons"], p.confidence)
        contenders.setdefault((key[0], rules.quota(key[0])), []).append((spec["priority"], key))
    counts: dict[str, int] = {}
    admitted = [key for (queue, quota), keys in contenders.items()
                for key in _admit(session, queue, quota, keys, counts)]
    rows: list[dict[str, Any]] = []
    for key in sorted(admitted):
        spec = wanted[key]
        p, rules = spec["prediction"], spec["rules"]
        second = rules_mod.share_of("second", p.input_hash) < rules.second_annotator_share
        rows.append({"queue": key[0], "prediction_id": p.prediction_id,
                     "input_hash": p.input_hash, "experiment_id": p.experiment_id,
                     "candidate": p.candidate, "slice": p.slice, "reasons": spec["reasons"],
                     "reason": ",".join(spec["reasons"]), "priority": spec["priority"],
                     "status": "open", "labels_needed": 2 if second else 1, "created_at": now})
    if not rows:
        return 0
    # One statement for the batch's new items (one JSON document on PostgreSQL, see
    # insert_rows); an item that another worker inserted meanwhile, under either unique key, is
    # skipped.
    added = insert_rows(session, r.__table__, rows, (), returning=["id", "queue", "input_hash"])
    for item_id, queue, input_hash in added:
        if queue.startswith(rules_mod.STAGE_PREFIX):  # a new stage item: its crops or sample
            spec = wanted[(queue, input_hash)]
            store_samples(session, item_id, queue, spec["prediction"], spec["truth"])
    return len(added)


def _admit(session: Session, queue: str, quota: int, contenders: list[tuple[float, Any]],
           counts: dict[str, int]) -> list[Any]:
    """The contenders (priority, key) a queue takes, in two queries for the whole batch.

    Below its quota a queue takes the most urgent contenders that fit; at its quota the next
    ones each replace a less urgent open item (marked ``dropped``), strongest against weakest,
    while they beat it. The audit queue takes contenders in the order given (a hash order, so
    it stays uniform) and never displaces. `counts` keeps each queue's open items across the
    batch's quota groups."""
    r = RelabelItem
    if queue not in counts:
        counts[queue] = session.scalar(select(func.count()).select_from(r).where(
            r.queue == queue, r.status.in_(OPEN))) or 0
    room = max(0, quota - counts[queue])
    audit = queue == rules_mod.OFFLINE_TEST
    ranked = contenders if audit else sorted(contenders, key=lambda c: (-c[0], c[1]))
    taken, rest = ranked[:room], ranked[room:]
    if rest and not audit and quota > 0:
        weakest = session.execute(select(r.id, r.priority).where(
            r.queue == queue, r.status == "open", r.lease_owner.is_(None))
            .order_by(r.priority, r.id.desc()).limit(len(rest))).all()
        beaten = []
        for contender, item in zip(rest, weakest, strict=False):
            if item.priority >= contender[0]:
                break
            beaten.append(item.id)
            taken.append(contender)
        if beaten:
            dropped = session.execute(
                update(r).where(in_values(session, r.id, beaten), r.status == "open")
                .values(status="dropped", dropped_at=utcnow()),
                execution_options={"synchronize_session": False})
            counts[queue] -= dropped.rowcount or 0
    counts[queue] += len(taken)  # another worker's racing insert of the same key is skipped
    return [key for _, key in taken]


def route_label(session: Session, item_id: int) -> str | None:
    """A verified label of a staged (OCR) answer also labels the blamed stage's item
    (``stage:<stage>``, done, unless a live lease holds it, checked against this label then, or
    it waits for the admin; one it makes names `item_id` as ``routed_from``: a copy); the queue,
    or None. Called once an item is done; a done stage item's samples are rebuilt from its label."""
    item = session.get(RelabelItem, item_id)
    if item is None or item.status != "done" or item.label is None:
        return None
    p = session.get(Prediction, item.prediction_id)
    if item.queue.startswith(rules_mod.STAGE_PREFIX):
        if p is not None:
            store_samples(session, item.id, item.queue, p, item.label)
        return None
    stage = _blame(p, item.label) if p is not None else None
    if p is None or stage not in load_rules(session)(p.experiment_id, p.candidate).stage_datasets:
        return None
    queue = f"{rules_mod.STAGE_PREFIX}{stage}"
    done = {"status": "done", "label": item.label, "annotator": item.annotator,
            "labeled_at": item.labeled_at}
    session.execute(dialect_insert(session, RelabelItem.__table__).values(
        queue=queue, prediction_id=p.prediction_id, input_hash=p.input_hash,
        experiment_id=p.experiment_id, candidate=p.candidate, slice=p.slice,
        reasons=[rules_mod.STAGE_BLAME], reason=rules_mod.STAGE_BLAME, priority=0.0,
        labels_needed=1, created_at=utcnow(), routed_from=item.id, **done)
        .on_conflict_do_nothing())
    session.execute(update(RelabelItem).where(
        RelabelItem.queue == queue, RelabelItem.input_hash == p.input_hash,
        or_(RelabelItem.status == "open",
            and_(RelabelItem.status == "leased", RelabelItem.lease_until < utcnow())))
        .values(lease_owner=None, lease_until=None, note=None, **done))
    routed = session.scalars(select(RelabelItem).where(
        RelabelItem.queue == queue, RelabelItem.input_hash == p.input_hash)).one()
    # The stage's samples follow its item's label (the one routed now, or one given before).
    store_samples(session, routed.id, queue, p,
                  item.label if routed.label is None else routed.label)
    return queue
