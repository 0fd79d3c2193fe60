"""The results' ``label_metrics``: per label variant (arm or shadow), its classes and, per
slice, the confusion counts and the prediction shift against the offline label shares of the
same slice (``all``: the whole offline test), all of the version the variant runs.

Where the variant's units sent several answers each, a shift is tested over its own units
(:mod:`evaluation.clustered_shares`), the units' counts read from the stored predictions
(:func:`evaluation.unit_class_counts.variant_class_counts`); past the live read's limit, or
where the stored answers do not account for a slice's counts, it stays per answer, the former
with a ``unit_note`` saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.store.models import Experiment
from evaluation import aggregation as agg
from evaluation.candidate_facts import UNKNOWN, CandidateFacts
from evaluation.label_metrics import label_block
from evaluation.online import ALL, Cells, Variant
from evaluation.unit_class_counts import too_many, variant_class_counts
from evaluation.unit_moments import UnitAnalysis
from evaluation.unit_sums import ACCURACY_BOUND


def label_metrics(session: Session, experiment: Experiment, cells: Cells,
                  variants: list[Variant], slices: list[str],
                  facts: dict[Variant, CandidateFacts], versions: dict[Variant, str | None],
                  alpha: float, units: UnitAnalysis, since: datetime | None = None,
                  until: datetime | None = None) -> dict[str, Any]:
    """The block above for every label variant; `units` says whose units sent several
    answers (the per-unit sums), `since`/`until` the window read."""
    labelled = [v for v in variants if facts.get(v, UNKNOWN).is_label]
    answers = {v: {s: {lb: n[0] for lb, n in cells[(v, s)].labels(agg.OUTPUT).items()}
                   for s in slices if (v, s) in cells}
               for v in labelled if (v, ALL) in cells
               and units.stats(v, ALL, ACCURACY_BOUND).clustered}
    per_unit = variant_class_counts(session, experiment, answers, since, until)
    out: dict[str, Any] = {}
    for v in labelled:
        f = facts[v]
        note = too_many(sum(answers[v][ALL].values())) if v in answers else None
        per_slice = {}
        for s in slices:
            if (v, s) not in cells:
                continue
            if s == ALL:
                overall = f.offline.get("overall") or {}
                offline = {**overall, "label_shares": f.offline.get("label_shares")
                           or overall.get("label_shares")}
            else:
                offline = (f.offline.get("slices") or {}).get(s)
            per_slice[s] = block = label_block(
                cells[(v, s)], f.kind.classes, offline, alpha, shadow=v.shadow,
                compared_as=f.compared_as, units=per_unit.get(v, {}).get(s))
            for shift in (block["prediction_shift"], block["answer_shift"]):
                if note and shift:
                    shift["unit_note"] = note
        out[v.name] = {"candidate": v.candidate, "version": versions[v],
                       "classes": list(f.kind.classes), "slices": per_slice}
    return out
