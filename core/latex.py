"""LaTeX tokens: tokenizer, validator and token edit distance.

Shared ground: serving writes LaTeX, the corrections endpoint validates it, and evaluation
compares it with the truth, so the one definition of a token lives here.

Text is put in Unicode's composed form (NFC) before it is split, so an accent typed as a
letter plus a combining mark is the same token as the precomposed letter it shows as.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import Levenshtein

from core.text import quoted

# Control and format characters (a bell, a right-to-left override, a zero-width joiner): a
# formula holding one shows as another formula, or as nothing.
_INVISIBLE = frozenset({"Cc", "Cf"})
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\S")
# Commands abvoc's formulas may contain, with how many braced arguments each takes
# (tests/workloads/ocr checks the workload's generator uses no other).
COMMANDS: dict[str, int] = {
    "\\alpha": 0,
    "\\beta": 0,
    "\\pi": 0,
    "\\theta": 0,
    "\\times": 0,
    "\\div": 0,
    "\\frac": 2,
    "\\sqrt": 1,
}


MAX_NESTING = 64
"""Braces nested deeper than this are refused: a written formula nests a handful, and the
structure comparisons (evaluation.attribution) recurse once per level."""


def tokenize(latex: str) -> list[str]:
    """Commands, single characters and braces; whitespace only separates."""
    return _TOKEN.findall(unicodedata.normalize("NFC", latex))


def validate_latex(latex: str) -> list[str]:
    """What is wrong with a LaTeX string, one message per problem (empty when it is fine)."""
    problems: list[str] = []
    tokens = tokenize(latex)
    if not tokens:
        return ["the formula is empty"]
    depth = 0
    for i, tok in enumerate(tokens):
        if tok == "{":
            depth += 1
            if depth == MAX_NESTING + 1:
                problems.append(f"braces nested more than {MAX_NESTING} deep at token {i + 1}")
        elif tok == "}":
            depth -= 1
            if depth < 0:
                problems.append(f"unbalanced braces: '}}' at token {i + 1} closes nothing")
                depth = 0
        elif len(tok) == 1 and unicodedata.category(tok) in _INVISIBLE:
            problems.append(f"an invisible control or format character (U+{ord(tok):04X}) at "
                            f"token {i + 1}: a formula is written with visible symbols")
        elif tok.startswith("\\") and tok not in COMMANDS:
            problems.append(f"unknown command {_as_typed(tok)} at token {i + 1}")
        elif tok in ("^", "_"):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or nxt in ("}", "^", "_"):
                problems.append(f"'{tok}' at token {i + 1} has nothing to attach")
        if tok in COMMANDS and COMMANDS[tok]:
            nargs = COMMANDS[tok]
            if tokens[i + 1: i + 2] != ["{"]:
                problems.append(f"{tok} at token {i + 1} needs {nargs} braced argument(s)")
    if depth > 0:
        problems.append(f"unbalanced braces: {depth} '{{' never closed")
    return problems


def _as_typed(command: str) -> str:
    r"""A command between plain quotes as its writer typed it: repr would show ``\\foo`` for
    ``\foo``, a backslash they never typed; an invisible character after the backslash is
    named by its code point, as it cannot be shown."""
    if any(unicodedata.category(c) in _INVISIBLE for c in command):
        return f"'\\' followed by U+{ord(command[-1]):04X}"
    return quoted(command)


def token_edit_distance(predicted: str, truth: str) -> float:
    """Levenshtein distance over LaTeX tokens, normalized by the longer token sequence (0..1).

    RapidFuzz compares the token lists themselves, so nothing grows with the tokens a
    long-running worker meets (a vocabulary of one character per token ran out of characters
    after about a million distinct ones)."""
    return float(Levenshtein.normalized_distance(tokenize(predicted), tokenize(truth)))
