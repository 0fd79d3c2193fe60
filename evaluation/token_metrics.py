"""Exact match and token edit distance of an answer against its truth, by output type.

The tokens and exact match are core.same_answer's (annotators' agreement in feedback follows
the same rule): a word for ``text``, a LaTeX token for ``latex`` and untyped answers, the whole
value for the other types.

The distance is Levenshtein over those tokens normalized by the longer sequence (0..1), the
same figure the offline test reports (:mod:`serving.bundles.offline_metrics`). Words are
compared as sequences directly (RapidFuzz takes lists of strings), so no vocabulary grows with
the words a long-running worker sees.
"""

from __future__ import annotations

import math

from rapidfuzz.distance import Levenshtein

from core.latex import token_edit_distance
from core.same_answer import WHOLE_TYPES, WORD_TYPES, same_output, tokens


def answers_differ(one: str, other: str, output_type: str | None = None,
                   number_tolerance: float = 0.0) -> bool:
    """Whether two answers to one request disagree: not the same tokens of the type, and for
    numbers apart by more than `number_tolerance` times the larger one (and, near zero, by
    more than `number_tolerance` itself), so that a regression's shadow is not told apart from
    its twin by its last digits."""
    if output_type == "number" and one != other:
        try:
            a, b = float(one), float(other)
        except ValueError:  # a failed answer has no number
            return True
        return not math.isclose(a, b, rel_tol=number_tolerance, abs_tol=number_tolerance)
    return not same_output(one, other, output_type)


def edit_distance(output: str, truth: str, output_type: str | None = None) -> float:
    """Normalized token edit distance (0 the same, 1 nothing in common)."""
    if output_type in WORD_TYPES or output_type in WHOLE_TYPES:
        return float(Levenshtein.normalized_distance(tokens(output, output_type),
                                                     tokens(truth, output_type)))
    return token_edit_distance(output, truth)
