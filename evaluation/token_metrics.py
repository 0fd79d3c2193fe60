"""Exact match and token edit distance of an answer against its truth, by output type.

The token is what a person would count as one edit: a word for ``text`` (split on whitespace,
so spacing never counts), a LaTeX token for ``latex`` and for untyped (v1 and OCR) answers
(:func:`core.latex.tokenize`), and the whole value for the other types, whose answers are
compared as the store keeps them (numbers and JSON as canonical compact JSON).

The distance is Levenshtein over those tokens normalized by the longer sequence (0..1), the
same figure the offline test reports (:mod:`serving.bundles.offline_metrics`). Words are
compared as sequences directly (RapidFuzz takes lists of strings), so no vocabulary grows with
the words a long-running worker sees.
"""

from __future__ import annotations

import math

from rapidfuzz.distance import Levenshtein

from core.latex import token_edit_distance, tokenize

WORD_TYPES = frozenset({"text"})
WHOLE_TYPES = frozenset({"label", "number", "json"})


def tokens(value: str, output_type: str | None) -> list[str]:
    """The tokens of an answer or a truth of this output type."""
    if output_type in WORD_TYPES:
        return value.split()
    if output_type in WHOLE_TYPES:
        return [value]
    return tokenize(value)


def same_output(output: str, truth: str, output_type: str | None = None) -> bool:
    """Exact match: the same tokens of the type (spacing never counts for text and LaTeX)."""
    return output == truth or tokens(output, output_type) == tokens(truth, output_type)


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
