"""How many predictions an arm's rate guardrails (error rate, correction rate) may count as
independent, where units send several requests each.

The guardrail's always-valid sequence (:mod:`evaluation.stats.confidence_sequence`) treats the
predictions as independent draws. A unit whose requests fail together (its inputs are the hard
ones) makes them anything but: with units sending 1-20 requests and error rates spread over the
units, a true rate at the limit was declared breached in 12 % to 61 % of peeking runs. Dividing
the predictions by the design effect, the delta method's variance of the rate over units against
the binomial one over predictions (Deng, Knoblich and Lu, KDD 2018), brings that back under
2.5 %; where units send one request each the count is the predictions'.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evaluation.online import ALL, Variant
from evaluation.unit_moments import UnitAnalysis, per_unit_intervals
from evaluation.unit_sums import Moments

GUARDRAIL_RATES = ("error_rate", "correction_rate")
FIGURE = "guardrail_predictions"
"""An arm's figure: {rate: the predictions its guardrail counts}, where units are analysed."""


def effective_predictions(moments: Moments) -> float | None:
    """The predictions divided by the design effect (never more than the predictions); None
    where the units show no variance to compare (fewer than two, or a rate at 0 or 1)."""
    units, rate, _, squares = moments.stats()
    predictions = moments.sx
    if units < 2 or predictions <= 0:
        return None
    over_units = squares / ((units - 1) * units)
    over_predictions = rate * (1 - rate) / predictions
    if not (over_units > 0 and over_predictions > 0):
        return None
    return predictions * min(1.0, over_predictions / over_units)


def unit_figures(analysis: UnitAnalysis, metrics_by_variant: dict[str, Any],
                 variants: Iterable[Variant], alpha: float) -> None:
    """The per-unit intervals (:func:`evaluation.unit_moments.per_unit_intervals`) and each
    arm's :data:`FIGURE` for the rates tested per unit."""
    variants = list(variants)
    per_unit_intervals(analysis, metrics_by_variant, variants, alpha)
    for variant in variants:
        figures = metrics_by_variant.get(variant.name, {}).get(ALL)
        if not figures:
            continue
        counts = {}
        for rate in GUARDRAIL_RATES:
            if rate in analysis.per_unit:
                effective = effective_predictions(analysis.stats(variant, ALL, rate))
                if effective is not None:
                    counts[rate] = effective
        if counts:
            figures[FIGURE] = counts
