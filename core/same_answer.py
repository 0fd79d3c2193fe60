"""When two answers of one output type are the same: the one rule exact match, shadow
disagreements, annotators' agreement and verdicts on corrections share.

The token is what a person would count as one edit: a word for ``text`` (split on whitespace,
so spacing never counts), a LaTeX token for ``latex`` and for untyped (v1 and OCR) answers
(:func:`core.latex.tokenize`), and the whole value for the other types, whose answers are
compared as the store keeps them (numbers and JSON as canonical compact JSON). Text is put in
Unicode's composed form (NFC) first, so an accent typed as a letter and a combining mark matches
the precomposed letter it shows as.
"""

from __future__ import annotations

import unicodedata

from rapidfuzz.distance import Levenshtein

from core.latex import tokenize

WORD_TYPES = frozenset({"text"})
WHOLE_TYPES = frozenset({"label", "number", "json"})


def tokens(value: str, output_type: str | None) -> list[str]:
    """The tokens of an answer or a truth of this output type."""
    if output_type in WORD_TYPES:
        return unicodedata.normalize("NFC", value).split()
    if output_type in WHOLE_TYPES:
        return [value]
    return tokenize(value)


def same_output(output: str, truth: str, output_type: str | None = None) -> bool:
    """Exact match: the same tokens of the type (spacing never counts for text and LaTeX)."""
    return output == truth or tokens(output, output_type) == tokens(truth, output_type)


def edit_distance(output: str, truth: str, output_type: str | None = None) -> float:
    """Levenshtein distance over the type's tokens, normalized by the longer sequence (0 the
    same, 1 nothing in common): online and offline figures are this one."""
    return float(Levenshtein.normalized_distance(tokens(output, output_type),
                                                 tokens(truth, output_type)))
