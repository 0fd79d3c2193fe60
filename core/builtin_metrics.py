"""The results' built-in metrics, in one place: the results compare them, an experiment may name
one as its primary metric, and an outcome metric may not reuse a name (it would clash with the
built-in one in the results). Kept in core because serving (the experiment spec) and evaluation
(the results, the outcome definitions) both read it and may not import each other."""

from __future__ import annotations

import math
from dataclasses import dataclass

_SHARE = (0.0, 1.0)
_NON_NEGATIVE = (0.0, math.inf)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    is_proportion: bool
    lower_is_better: bool
    # The values a mean of the metric can take: an interval of one is clipped to them.
    bounds: tuple[float, float] = (-math.inf, math.inf)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("correction_rate", True, True, _SHARE),
    MetricSpec("error_rate", True, True, _SHARE),
    MetricSpec("exact_match", True, False, _SHARE),
    MetricSpec("token_edit_distance", False, True, _SHARE),
    MetricSpec("latency_ms", False, True, _NON_NEGATIVE),
    MetricSpec("confidence", False, False, _SHARE),
)
# Compared only where a variant answers numbers (or one of them is the primary metric).
NUMBER_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("absolute_error", False, True, _NON_NEGATIVE),
    MetricSpec("squared_error", False, True, _NON_NEGATIVE),
)
ALL_METRICS: tuple[MetricSpec, ...] = (*METRICS, *NUMBER_METRICS)
# Matching an answer token by token: what text answers are judged by, meaningless for numbers
# (a number is judged by its error).
MATCH_METRICS: frozenset[str] = frozenset({"exact_match", "token_edit_distance"})
# The output types an edit distance over tokens judges: a class, a number or a JSON value is
# right or wrong (exact match), never "two tokens off".
TOKEN_TYPES: frozenset[str] = frozenset({"text", "latex"})


def match_metrics_judging(output_type: str | None) -> frozenset[str]:
    """The matching metrics answers of `output_type` are judged by (None, a candidate that
    does not say what it answers: all of them)."""
    if output_type is None or output_type in TOKEN_TYPES:
        return MATCH_METRICS
    return frozenset() if output_type == "number" else frozenset({"exact_match"})
def measures(metric: str, output_type: str | None) -> bool:
    """Whether the built-in `metric` has anything to measure in answers of `output_type`: an
    error of a number, a match of the other types; the rest in any answer."""
    if metric in {m.name for m in NUMBER_METRICS}:
        return output_type == "number"
    if metric in MATCH_METRICS:
        return metric in match_metrics_judging(output_type)
    return True


# Every metric the results test, so every name an experiment's primary_metric may take.
PRIMARY_METRICS: tuple[str, ...] = tuple(m.name for m in ALL_METRICS)
DEFAULT_PRIMARY = METRICS[0].name
