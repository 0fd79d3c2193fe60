"""Which stage of the OCR pipeline caused an error, for every prediction with a known truth.

A page's prediction (formula extraction, in front of the OCR) is blamed on **extraction** when
its boxes are not the truth's: a formula missed, or one split in two.

The pipeline records each stage's intermediate output in the prediction's ``stages``: detector
boxes, recognizer classes, aligner relations ``[parent, relation, probability]`` and the
converter's LaTeX. Against the truth (a correction or a relabel), the first stage that went
wrong is blamed:

1. **detector**: the number of detected symbols differs from the truth's (a missed or extra
   symbol; a fraction bar counts as one symbol, ``-``);
2. **recognizer**: as many symbols, but not the same multiset of classes (a wrong symbol), or
   the same multiset on the wrong symbols: where the symbols pair with the truth's in reading
   order (:func:`symbol_pairs`), a symbol whose class is another's (``4-8×6`` for ``4-6×8``);
3. **aligner**: the right symbols, but the structure their relations describe (superscript,
   subscript, fraction, root, reading order) is not the truth's;
4. **converter**: the structure is the truth's, yet the string is not.

Structures are compared in one canonical form: every group braced, parsed from the truth and
rendered from the relations by the same small grammar, so ``x^2`` and ``x^{2}`` are equal.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from core.latex import MAX_NESTING, tokenize

STAGES = ("extraction", "detector", "recognizer", "aligner", "converter")
_MARKUP = {"{", "}", "^", "_"}
_TWO_GROUPS, _ONE_GROUP = {"\\frac"}, {"\\sqrt"}
_GROUPED = _TWO_GROUPS | _ONE_GROUP


def canonical(latex: str) -> list[str]:
    """The tokens of a formula with every script, fraction and root argument braced; a
    ValueError for one nested past MAX_NESTING (a candidate's answer is never validated)."""
    tokens = tokenize(latex)
    out, _ = _row(tokens, 0, 0)
    return out


def _group(tokens: list[str], i: int, depth: int) -> tuple[list[str], int]:
    if i < len(tokens) and tokens[i] == "{":
        inner, i = _row(tokens, i + 1, depth + 1)
        return inner, i + 1  # skip the closing brace (or the end)
    if i < len(tokens):
        return [tokens[i]], i + 1
    return [], i


def _row(tokens: list[str], i: int, depth: int) -> tuple[list[str], int]:
    if depth > MAX_NESTING:
        raise ValueError(f"a formula nested more than {MAX_NESTING} deep")
    out: list[str] = []
    while i < len(tokens) and tokens[i] != "}":
        tok = tokens[i]
        if tok in ("^", "_"):
            arg, i = _group(tokens, i + 1, depth)
            out += [tok, "{", *arg, "}"]
            continue
        if tok in _TWO_GROUPS:
            num, i = _group(tokens, i + 1, depth)
            den, i = _group(tokens, i, depth)
            out += [tok, "{", *num, "}", "{", *den, "}"]
        elif tok in _ONE_GROUP:
            body, i = _group(tokens, i + 1, depth)
            out += [tok, "{", *body, "}"]
        elif tok == "{":
            inner, i = _row(tokens, i + 1, depth + 1)
            out += inner
            i += 1
        else:
            out.append(tok)
            i += 1
    return out, i


def truth_symbols(latex: str) -> list[str]:
    """The symbols a detector should find: a fraction is its bar, ``-``; markup is nothing."""
    return ["-" if t == "\\frac" else t for t in canonical(latex) if t not in _MARKUP]


def render(classes: Sequence[str], relations: Sequence[Sequence[Any]],
           order: list[int] | None = None) -> list[str]:
    """Canonical tokens of the structure the aligner's relations describe; `order`, when
    given, receives the symbol indices in the order their tokens appear (reading order)."""
    children: dict[int, dict[str, int]] = defaultdict(dict)
    roots = []
    for i, rel in enumerate(relations):
        parent, kind = int(rel[0]), str(rel[1])
        if parent < 0 or parent >= len(classes) or parent == i or kind in children[parent]:
            roots.append(i)
        else:
            children[parent][kind] = i
    seen: set[int] = set()
    out: list[str] = []
    for root in roots:
        out += _render_row(root, classes, children, seen, order, 0)
    return out


def _render_row(node: int | None, classes: Sequence[str], children: dict[int, dict[str, int]],
                seen: set[int], order: list[int] | None, depth: int) -> list[str]:
    if depth > MAX_NESTING:  # relations a candidate recorded: a ValueError, as canonical's
        raise ValueError(f"relations nested more than {MAX_NESTING} deep")
    out: list[str] = []

    def row(child: int | None) -> list[str]:
        return _render_row(child, classes, children, seen, order, depth + 1)

    while node is not None and node not in seen:
        seen.add(node)
        if order is not None:
            order.append(node)  # a node writes exactly one symbol token, before its groups
        kids = children.get(node, {})
        if "num" in kids or "den" in kids:
            out += ["\\frac", "{", *row(kids.get("num")), "}", "{", *row(kids.get("den")), "}"]
        elif classes[node] in _ONE_GROUP:
            out += [classes[node], "{", *row(kids.get("body")), "}"]
        else:
            out.append(classes[node])
        for script, mark in (("sub", "_"), ("sup", "^")):
            if script in kids:
                out += [mark, "{", *row(kids[script]), "}"]
        node = kids.get("right")
    return out


def _skeleton(tokens: Sequence[str]) -> list[str]:
    """The structure of canonical tokens: every plain symbol one placeholder."""
    return [t if t in _MARKUP or t in _GROUPED else "." for t in tokens]


def symbol_pairs(classes: Sequence[str], relations: Sequence[Sequence[Any]],
                 truth: str) -> list[tuple[int, str]] | str:
    """(detected symbol index, true class) for every truth symbol, in reading order; or the
    reason the detected symbols do not line up with the truth's."""
    symbols = truth_symbols(truth)
    if len(symbols) != len(classes):
        return (f"the detector found {len(classes)} symbols and the truth has {len(symbols)}, "
                "so symbols cannot be paired; the item is the whole input")
    want = canonical(truth)
    order: list[int] = []
    got = render(classes, relations, order) if len(relations) == len(classes) else []
    if len(order) == len(classes) and _skeleton(got) == _skeleton(want):
        return list(zip(order, symbols, strict=True))
    if all(t not in _MARKUP and t not in _GROUPED for t in want):
        return list(enumerate(symbols))  # one plain row: reading order is left to right
    return ("the recognized structure is not the truth's, so its symbols cannot be paired in "
            "reading order; the item is the whole input")


def _boxes(value: Any) -> list[tuple[int, ...]] | None:
    """A page's formula boxes (JSON text or a list of {box, score}), sorted; None if not."""
    try:
        items = json.loads(value) if isinstance(value, str) else value
        return sorted(tuple(int(v) for v in item["box"]) for item in items)
    except (TypeError, ValueError, KeyError):
        return None


def attribute(output: Any, stages: dict[str, Any] | None, truth: Any) -> str | None:
    """The stage to blame, ``"correct"`` when the output is right, None without stages.

    A page's prediction (its stages hold the extraction and no recognizer) is judged on its
    boxes: a customer's missed- or split-formula report corrects them, and blames extraction."""
    if stages and "extraction" in stages and "recognizer" not in stages:
        found, wanted = _boxes(output), _boxes(truth)
        if found is None or wanted is None:
            return None
        return "correct" if found == wanted else "extraction"
    want = canonical(truth)
    if canonical(output) == want:
        return "correct"
    if not stages or "recognizer" not in stages:
        return None
    classes = list(stages["recognizer"].get("classes", []))
    boxes = (stages.get("detector") or {}).get("boxes", classes)
    symbols = truth_symbols(truth)
    if len(boxes) != len(symbols):
        return "detector"
    if Counter(classes) != Counter(symbols):
        return "recognizer"
    relations = (stages.get("aligner") or {}).get("relations", [])
    pairs = symbol_pairs(classes, relations, truth)
    if not isinstance(pairs, str) and any(classes[i] != true for i, true in pairs):
        return "recognizer"  # the right classes on the wrong symbols: swapped in place
    if len(relations) != len(classes) or render(classes, relations) != want:
        return "aligner"
    return "converter"
