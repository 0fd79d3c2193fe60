"""Stage 4, the converter: symbols and their relations to one LaTeX string.

Algorithmic on purpose: once the relations are right the string follows, so any remaining
error points at an earlier stage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from workloads.ocr.formulas import SQRT, _token_join


def to_latex(classes: Sequence[str], relations: Sequence[tuple[int, str]],
             boxes: Sequence[Sequence[float]] | None = None) -> str:
    """LaTeX from per-symbol (parent, relation). Symbols with parent -1 start the formula; when
    a malformed input has several, they are read left to right (by box when given)."""
    return _token_join(to_tokens(classes, relations, boxes))


def to_tokens(classes: Sequence[str], relations: Sequence[tuple[int, str]],
              boxes: Sequence[Sequence[float]] | None = None) -> list[str]:
    children: dict[int, dict[str, int]] = defaultdict(dict)
    roots = []
    for i, (parent, rel) in enumerate(relations):
        if parent < 0 or parent >= len(classes) or parent == i:
            roots.append(i)
        elif rel not in children[parent]:
            children[parent][rel] = i
        else:
            roots.append(i)  # a second child in the same slot: keep it, read it as a root
    if boxes is not None:
        roots.sort(key=lambda i: boxes[i][0])
    tokens: list[str] = []
    seen: set[int] = set()
    for root in roots:
        tokens += _row(root, classes, children, seen)
    return tokens


def _row(start: int | None, classes: Sequence[str], children: dict[int, dict[str, int]],
         seen: set[int]) -> list[str]:
    out: list[str] = []
    node = start
    while node is not None and node not in seen:
        seen.add(node)
        kids = children.get(node, {})
        cls = classes[node]
        if "num" in kids or "den" in kids:
            out += ["\\frac", "{", *_row(kids.get("num"), classes, children, seen), "}", "{"]
            out += [*_row(kids.get("den"), classes, children, seen), "}"]
        elif cls == SQRT:
            out += [SQRT, "{", *_row(kids.get("body"), classes, children, seen), "}"]
        else:
            out.append(cls)
        if "sub" in kids:
            out += ["_", "{", *_row(kids["sub"], classes, children, seen), "}"]
        if "sup" in kids:
            out += ["^", "{", *_row(kids["sup"], classes, children, seen), "}"]
        node = kids.get("right")
    return out
