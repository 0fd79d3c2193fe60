"""Which built-in metrics an experiment's results compare between its variants: the family
Holm's and BH's adjustments run over, so a metric no variant's answers are judged by is left
out rather than compared for nothing (each comparison in the family costs the others power);
what a comparison's figures cannot say alone (:func:`add_caveats`); and its Bayesian figures
read in the metric's direction (:func:`facing`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.builtin_metrics import (
    MATCH_METRICS,
    METRICS,
    NUMBER_METRICS,
    MetricSpec,
    match_metrics_judging,
)
from evaluation import aggregation as agg
from evaluation.candidate_facts import CandidateFacts
from evaluation.decisions import FAILURES
from evaluation.online import Cells


def metrics_compared(cells: Cells, primary: str,
                     facts: Mapping[Any, CandidateFacts]) -> tuple[MetricSpec, ...]:
    """:data:`METRICS`, plus :data:`NUMBER_METRICS` when a variant answers numbers (declared,
    or with absolute errors counted) or the primary metric is one of them; less the matching
    metrics no variant's answers are judged by (:func:`match_metrics_judging`):
    each comparison left in the family costs the others power under Holm's and BH's
    adjustment. Where a variant's output type is not known, they are all kept."""
    numbers = (primary in {m.name for m in NUMBER_METRICS}
               or any(f.is_number for f in facts.values())
               or any(c.get(agg.ABSOLUTE_ERROR)[0] > 0 for c in cells.values()))
    specs = (*METRICS, *NUMBER_METRICS) if numbers else METRICS
    types = [f.output_type for f in facts.values()]
    if not types or None in types:
        return specs
    unjudged = MATCH_METRICS - frozenset().union(*map(match_metrics_judging, types))
    return tuple(s for s in specs if s.name not in unjudged or s.name == primary)


def add_caveats(records: list[dict[str, Any]]) -> None:
    """Set each comparison's ``caveat`` (None for most): a treatment whose latency reads
    lower than control's while it fails more often is told so. Latency counts every request,
    failed ones too (Operations watches the service's latency, timeouts included), so an arm
    that fails fast reads faster by failing; its error-rate row says how much more it fails."""
    failing = {(r["treatment"], r["slice"]): r for r in records if r["metric"] == FAILURES
               and r["treatment_mean"] is not None and r["control_mean"] is not None
               and r["treatment_mean"] > r["control_mean"]}
    for r in records:
        errors = failing.get((r["treatment"], r["slice"]))
        faster = r["metric"] == agg.LATENCY and r["difference"] is not None \
            and r["difference"] < 0
        r["caveat"] = (f"it fails more often than control (error rate "
                       f"{errors['treatment_mean']:.1%} against {errors['control_mean']:.1%}) "
                       "and its failed requests count in its latency: part of this speed may "
                       "be failing fast") if faster and errors is not None else None


def facing(record: dict[str, Any], spec: MetricSpec) -> None:
    """Mark the record's direction and read its Bayesian figures in it: the statistics give the
    chance that the treatment's value is higher and the losses of a higher-is-better choice, so
    for a lower-is-better metric (a correction rate, latency) the chance to win is the chance
    it is lower and the two expected losses trade places. A treatment the verdict called better
    on correction_rate read as a 0.09 % chance to win with a large expected loss."""
    record["lower_is_better"] = spec.lower_is_better
    if not spec.lower_is_better:
        return
    if record.get("chance_to_win") is not None:
        record["chance_to_win"] = 1.0 - record["chance_to_win"]
    record["expected_loss"], record["expected_loss_control"] = (
        record.get("expected_loss_control"), record.get("expected_loss"))
