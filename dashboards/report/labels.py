"""Names as chart labels: the one place that shortens them and keeps only the top few of many.

A 100-character arm name or 2,000 slice strings are ordinary input; drawn as they are, they
squash a plot to a strip or smear it black. Charts (the weekly report's and the dashboard's)
draw the shortened name and keep the whole one for hovers and tables.
"""

from __future__ import annotations

from collections.abc import Mapping

LABEL_CHARS = 24
"""Longest label a chart draws: about a third of a report plot's width at its font size."""
TOP = 15
"""Bars a chart of many names draws before it folds the rest into one."""


def shorten(text: object, limit: int = LABEL_CHARS) -> str:
    """``text`` of at most ``limit`` characters: a long one keeps its start and its end around
    an ellipsis (names that differ only at the end, ``model-…-v2``, stay apart)."""
    text = str(text)
    if len(text) <= limit:
        return text
    tail = max((limit - 1) // 3, 1) if limit > 4 else 0
    return text[: limit - 1 - tail] + "…" + (text[-tail:] if tail else "")


def top_with_rest(counts: Mapping[str, float], top: int = TOP,
                  what: str = "others") -> tuple[list[str], list[float]]:
    """The ``top`` largest counts (labels and values, largest first) and, when more were there,
    one more bar ``"N other <what>"`` holding their sum, so a chart stays readable and still
    adds up."""
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    labels, values = [k for k, _ in ranked[:top]], [v for _, v in ranked[:top]]
    rest = ranked[top:]
    if rest:
        labels.append(f"{len(rest):,} other {what}")
        values.append(sum(v for _, v in rest))
    return labels, values
