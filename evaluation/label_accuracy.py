"""Online accuracy from verified labels, each figure with the sample it is taken on and its bias.

Three figures of a variant's accuracy exist, and only one is unbiased:

* ``audit``: the verified labels of the **uniform audit sample** (served predictions picked by a
  hash of their id at the configured rate, whatever the customer did; see
  :mod:`evaluation.relabel_enqueue`). Its accuracy is an unbiased estimate of the accuracy on all
  served traffic, with a Wilson interval. A shadow is scored on the same inputs: the label of
  its served twin's input (same experiment, unit and input hash), so its audit accuracy is
  unbiased for the same traffic too.
* ``labeled``: every verified label (audit, corrections, low confidence, disagreements,
  divergent slices). Those inputs were picked because they were likely wrong, so this accuracy
  is biased low; it is shown for the label counts, not as the candidate's accuracy.
* ``correction_bound``: the results' ``accuracy_bound`` over all served predictions: only the
  answers whose truth (a correction, or a verified label) differs are counted wrong, so it is an
  upper bound that counts every silent error as right; a correction repeating the answer
  confirms it.

``candidates`` sums the served audit figures of the arms that ran each candidate, per slice.
``conflicts`` counts the experiment's labeled inputs whose done labels disagree: they have no
truth and are left out of ``audit`` and ``labeled`` (:mod:`core.verified_labels`, the rule the
dataset export follows too). Labels are compared, and answers scored, within the output type
they were given in (:mod:`core.verified_labels`): another experiment's class name on the same
input is neither a conflict with a number label nor the truth of a number answer.

The results' ``exact_match`` is taken over predictions with a known truth, which come mostly
from corrections: a corrected answer was wrong, so where every truth is a correction it is 0 by
construction. It is never the candidate's accuracy; :data:`EXACT_MATCH_NOTE` says so beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.relabel import AUDIT
from core.same_answer import same_output
from core.store.models import Prediction, RelabelItem
from core.verified_labels import UNTYPED, input_key, item_type, typed_labels
from evaluation.candidate_facts import Ref, shown_names
from evaluation.label_truths import LabelTruths
from evaluation.online import ALL, Cells, Variant
from evaluation.stats.small_samples import wilson_interval

AUDIT_SAMPLE = ("uniform audit sample: served predictions picked by a hash of their id at the "
                "configured audit rate, independent of corrections; labels verified by annotators")
AUDIT_BIAS = "none by selection (uniform random); annotator error remains"
SHADOW_AUDIT_SAMPLE = ("the audit sample's inputs: each shadow answer scored against the label "
                       "of its served twin's input (same experiment, unit and input hash)")
LABELED_SAMPLE = "every verified label (audit, corrections, low confidence, disagreements, slices)"
LABELED_BIAS = ("biased low: most labeled inputs were picked because they were likely wrong; not "
                "the candidate's accuracy")
BOUND_SAMPLE = "all served predictions"
BOUND_BIAS = ("upper bound: counts wrong only the answers whose correction or verified label "
              "differs, every other answer as right (customers correct only some errors); "
              "unobserved for shadows")
EXACT_MATCH_NOTE = ("metrics.exact_match is taken over predictions with a known truth, mostly "
                    "customer corrections of wrong answers (0 by construction when all truths "
                    "are corrections): never the candidate's accuracy; read online_accuracy")


def _figure(correct: int, n: int, alpha: float, sample: str, bias: str) -> dict[str, Any]:
    low, high = wilson_interval(correct, n, alpha) if n else (None, None)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else None,
            "ci": [low, high] if n else None, "interval": "wilson", "sample": sample,
            "bias": bias}


Counts = dict[tuple[Variant, str, bool], list[int]]


def _counts(session: Session, experiment_id: int) -> tuple[Counts, int]:
    """(variant, slice, audit?) -> [correct, n] over labeled inputs of the experiment, and how
    many of its labeled inputs were left out as conflicts (their labels disagree)."""
    r, p = RelabelItem, Prediction
    items = session.execute(select(r.prediction_id, input_key(), item_type(session),
                                   r.reasons).where(
        func.coalesce(r.experiment_id, 0) == experiment_id, r.status == "done",
        r.label.is_not(None)).order_by(r.id)).all()
    verified = typed_labels(session)
    # One truth per served prediction, its input's in its output type (core.verified_labels'
    # rule, the export's too): an input labeled in several queues counts once, as audit if any
    # of its items came from the audit; an input whose labels disagree is a conflict and
    # counts nowhere.
    truth: dict[str, tuple[str, bool, str]] = {}
    conflicts: set[tuple[str, str]] = set()
    for pid, key, kind, reasons in items:
        if key is None or (key, kind) not in verified:
            continue  # no input known (no stored prediction either): nothing to score
        label = verified[(key, kind)]
        if label is None:
            conflicts.add((key, kind))
            continue
        old = truth.get(pid)
        truth[pid] = (label, bool(old and old[1]) or AUDIT in (reasons or []), kind)
    counts: Counts = defaultdict(lambda: [0, 0])
    ids = sorted(truth)
    for start in range(0, len(ids), 500):
        served = session.execute(select(p.prediction_id, p.experiment_id, p.unit_id,
                                        p.input_hash).where(
            p.prediction_id.in_(ids[start:start + 500]))).all()
        keys = {(s.experiment_id, s.unit_id, s.input_hash): s.prediction_id for s in served}
        if not keys:
            continue
        rows = session.execute(select(
            p.prediction_id, p.experiment_id, p.unit_id, p.input_hash, p.arm, p.candidate,
            p.shadow, p.slice, p.output, p.output_type).where(
            p.input_hash.in_(sorted({k[2] for k in keys})),
            func.coalesce(p.experiment_id, 0) == experiment_id)).all()
        for row in rows:
            twin = keys.get((row.experiment_id, row.unit_id, row.input_hash))
            if twin is None or (not row.shadow and row.prediction_id != twin):
                continue  # another request with the same input: not in the sample
            label, audited, kind = truth[twin]
            if (row.output_type or UNTYPED) != kind:
                continue  # a shadow of another output type: the label is no truth of it
            variant = Variant("" if row.shadow else (row.arm or ""), row.candidate, row.shadow)
            ok = int(same_output(row.output, label, row.output_type))
            for slice_ in {row.slice, ALL}:
                for in_audit in ({False, True} if audited else {False}):
                    c = counts[(variant, slice_, in_audit)]
                    c[0] += ok
                    c[1] += 1
    return counts, len(conflicts)


def labels_once(session: Session, experiment_id: int, start: datetime | None,
                end: datetime | None) -> LabelTruths:
    """An experiment's verified labels as every results read takes them (the truths they swap
    in the hours ``[start, end)`` and the online accuracy's counts), read once for the reads of
    a page (:class:`evaluation.label_truths.LabelTruths`)."""
    return LabelTruths.read(session, experiment_id, start, end, _counts(session, experiment_id))


def online_accuracy(session: Session, experiment_id: int, variants: list[Variant],
                    cells: Cells, metrics: dict[str, dict[str, dict[str, Any]]],
                    alpha: float = 0.05,
                    version_of: Callable[[Variant], str | None] = lambda v: None,
                    labels: LabelTruths | None = None) -> dict[str, Any]:
    """Per variant and slice: the audit accuracy, the accuracy over all labels, and the
    correction bound, each naming its sample and bias; `version_of` tells which candidate
    version a variant ran, so two versions of one name are summed apart; `labels`, the counts
    read once (:func:`labels_once`)."""
    read_once = labels.accuracy if labels is not None else None
    counts, conflicts = read_once or _counts(session, experiment_id)
    out: dict[str, Any] = {}
    for v in variants:
        slices = sorted({s for (var, s) in cells if var == v}
                        | {s for (var, s, _) in counts if var == v}, key=lambda s: (s != ALL, s))
        per_slice = {}
        for s in slices:
            audit = counts.get((v, s, True), [0, 0])
            labeled = counts.get((v, s, False), [0, 0])
            bound = (metrics.get(v.name, {}).get(s) or {}).get("accuracy_bound")
            per_slice[s] = {
                "audit": _figure(audit[0], audit[1], alpha,
                                 SHADOW_AUDIT_SAMPLE if v.shadow else AUDIT_SAMPLE, AUDIT_BIAS),
                "labeled": _figure(labeled[0], labeled[1], alpha, LABELED_SAMPLE, LABELED_BIAS),
                "correction_bound": {"accuracy": bound, "sample": BOUND_SAMPLE,
                                     "bias": BOUND_BIAS},
            }
        out[v.name] = {"candidate": v.candidate, "version": version_of(v), "shadow": v.shadow,
                       "slices": per_slice}
    return {"note": EXACT_MATCH_NOTE, "conflicts": conflicts, "variants": out,
            "candidates": _by_candidate(counts, alpha, version_of)}


def _by_candidate(counts: Counts, alpha: float,
                  version_of: Callable[[Variant], str | None]) -> dict[str, Any]:
    """The served audit figures summed over the arms that ran each candidate version: keyed by
    the name, or by ``name vX`` where the arms ran two versions of the name."""
    sums: dict[Ref, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for (variant, slice_, in_audit), (correct, n) in counts.items():
        if in_audit and not variant.shadow:
            cell = sums[(variant.candidate, version_of(variant))][slice_]
            cell[0] += correct
            cell[1] += n
    refs = sorted(sums, key=lambda r: (r[0], r[1] or ""))
    names = shown_names({"candidate": c, "version": v} for c, v in refs)
    return {names[ref]: {s: _figure(c, n, alpha, AUDIT_SAMPLE, AUDIT_BIAS)
                         for s, (c, n) in sorted(sums[ref].items(),
                                                 key=lambda kv: (kv[0] != ALL, kv[0]))}
            for ref in refs}
