"""Exact match and token edit distance of an answer against its truth, by output type.

The tokens and exact match are core.same_answer's (annotators' agreement in feedback follows
the same rule): a word for ``text``, a LaTeX token for ``latex`` and untyped answers, the whole
value for the other types.

The distance is core.same_answer's too, Levenshtein over those tokens normalized by the longer
sequence (0..1): the offline test (:mod:`serving.bundles.offline_metrics`) reports the same
figure. Tokens are compared as sequences directly (RapidFuzz takes lists of strings), so no
vocabulary grows with the tokens a long-running worker sees.
"""

from __future__ import annotations

import math

from core.same_answer import edit_distance, same_output

__all__ = ["answers_differ", "edit_distance"]


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
