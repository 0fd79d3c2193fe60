"""Random formula trees, their canonical LaTeX, and their ground-truth relation edges.

A formula is a *row*: a list of nodes laid out left to right. Nodes are a symbol, a symbol with
a superscript or subscript row, a fraction (numerator and denominator rows) or a square root
(body row). The same tree yields the canonical LaTeX string and, once rendered, the per-symbol
boxes and relations that the stage models learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITS = tuple("0123456789")
OPERATORS = ("+", "-", "\\times", "\\div", "=")
LETTERS = ("x", "y", "a", "b", "n")
GREEK = ("\\alpha", "\\beta", "\\pi", "\\theta")
PARENS = ("(", ")")
SQRT = "\\sqrt"
# What the recognizer tells apart. A fraction bar is drawn like a minus, so it is the class "-":
# only its neighbours (the aligner's job) say it is a bar.
SYMBOL_CLASSES: tuple[str, ...] = DIGITS + OPERATORS + PARENS + LETTERS + GREEK + (SQRT,)
CLASS_INDEX = {c: i for i, c in enumerate(SYMBOL_CLASSES)}

# Relation of a symbol to its parent. "start" marks the first symbol of the whole formula.
RELATIONS = ("start", "right", "sup", "sub", "num", "den", "body")
SCRIPT_RELATIONS = ("right", "sup", "sub")  # what the trained aligner decides between

LEVELS = ("elementary", "middle")


@dataclass
class Sym:
    cls: str


@dataclass
class Script:
    base: Sym
    rel: str  # "sup" or "sub"
    row: list[Node]


@dataclass
class Frac:
    num: list[Node]
    den: list[Node]


@dataclass
class Sqrt:
    body: list[Node]


Node = Sym | Script | Frac | Sqrt


def _token_join(tokens: list[str]) -> str:
    """Join tokens with no spaces, except where a command would swallow the next letter."""
    out = ""
    for tok in tokens:
        if out and out[-1].isalpha() and tok[0].isalpha() and _ends_with_command(out):
            out += " "
        out += tok
    return out


def _ends_with_command(text: str) -> bool:
    i = len(text)
    while i > 0 and text[i - 1].isalpha():
        i -= 1
    return i > 0 and text[i - 1] == "\\"


def latex_tokens(row: list[Node]) -> list[str]:
    tokens: list[str] = []
    for node in row:
        if isinstance(node, Sym):
            tokens.append(node.cls)
        elif isinstance(node, Script):
            tokens += [node.base.cls, "^" if node.rel == "sup" else "_", "{"]
            tokens += latex_tokens(node.row) + ["}"]
        elif isinstance(node, Frac):
            tokens += ["\\frac", "{", *latex_tokens(node.num), "}", "{"]
            tokens += latex_tokens(node.den) + ["}"]
        else:
            tokens += [SQRT, "{", *latex_tokens(node.body), "}"]
    return tokens


def to_latex(row: list[Node]) -> str:
    """The canonical LaTeX string: braces around every group, no optional spaces."""
    return _token_join(latex_tokens(row))


# --------------------------------------------------------------------------- random formulas


def _number(rng: np.random.Generator, max_digits: int = 2) -> list[Node]:
    n = int(rng.integers(1, max_digits + 1))
    digits = [str(int(rng.integers(1 if i == 0 and n > 1 else 0, 10))) for i in range(n)]
    return [Sym(d) for d in digits]


def _simple_frac(rng: np.random.Generator) -> Frac:
    return Frac(_number(rng, 1 if rng.random() < 0.7 else 2), _number(rng, 1))


def elementary(rng: np.random.Generator) -> list[Node]:
    """Digits, + − × ÷ =, simple fractions."""
    ops = ["+", "-", "\\times", "\\div"]
    kind = rng.random()
    if kind < 0.45:  # a op b = c
        row = _number(rng) + [Sym(str(rng.choice(ops)))] + _number(rng)
        if rng.random() < 0.7:
            row += [Sym("=")] + _number(rng)
        return row
    if kind < 0.75:  # chain of three terms
        return (
            _number(rng) + [Sym(str(rng.choice(ops)))] + _number(rng, 1)
            + [Sym(str(rng.choice(ops)))] + _number(rng, 1)
        )
    row: list[Node] = [_simple_frac(rng), Sym(str(rng.choice(["+", "-", "\\times"])))]
    row.append(_simple_frac(rng) if rng.random() < 0.6 else _number(rng, 1)[0])
    if rng.random() < 0.4:
        row += [Sym("=")] + ([_simple_frac(rng)] if rng.random() < 0.5 else _number(rng, 1))
    return row


def _atom(rng: np.random.Generator) -> Sym:
    r = rng.random()
    if r < 0.4:
        return Sym(str(rng.choice(LETTERS)))
    if r < 0.65:
        return Sym(str(rng.choice(GREEK)))
    return Sym(str(rng.integers(0, 10)))


def _script_row(rng: np.random.Generator) -> list[Node]:
    r = rng.random()
    if r < 0.6:
        return [Sym(str(rng.integers(2, 10)))]
    if r < 0.8:
        return [Sym(str(rng.choice(LETTERS)))]
    return [Sym(str(rng.choice(["n", "2", "x"]))), Sym("+"), Sym("1")]


def _term(rng: np.random.Generator, depth: int) -> list[Node]:
    r = rng.random()
    if r < 0.3:
        base = _atom(rng)
        return [Script(base, "sup" if rng.random() < 0.65 else "sub", _script_row(rng))]
    if r < 0.45 and depth > 0:
        return [Sqrt(_expr(rng, depth - 1, 2))]
    if r < 0.62 and depth > 0:
        return [Frac(_expr(rng, depth - 1, 2), _expr(rng, depth - 1, 2))]
    if r < 0.72 and depth > 0:
        inner = _expr(rng, 0, 2)
        close: Node = Sym(")")
        if rng.random() < 0.5:
            close = Script(Sym(")"), "sup", [Sym(str(rng.integers(2, 4)))])
        return [Sym("("), *inner, close]
    if r < 0.85:
        return _number(rng, 2)
    return [_atom(rng)]


def _expr(rng: np.random.Generator, depth: int, max_terms: int) -> list[Node]:
    n_terms = int(rng.integers(1, max_terms + 1))
    row: list[Node] = []
    for i in range(n_terms):
        if i:
            row.append(Sym(str(rng.choice(["+", "-", "+", "\\times"]))))
        row += _term(rng, depth)
    return row


def middle(rng: np.random.Generator) -> list[Node]:
    """Exponents, subscripts, roots, Greek letters, parentheses, nested fractions."""
    row = _expr(rng, 2, 3)
    if rng.random() < 0.35:
        row += [Sym("="), *_expr(rng, 1, 1)]
    if count_symbols(row) > 16:  # keep images small: fall back to a shorter draw
        return _expr(rng, 1, 2)
    return row


def random_formula(rng: np.random.Generator, level: str) -> list[Node]:
    if level == "elementary":
        return elementary(rng)
    if level == "middle":
        return middle(rng)
    raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")


def count_symbols(row: list[Node]) -> int:
    total = 0
    for node in row:
        if isinstance(node, Sym):
            total += 1
        elif isinstance(node, Script):
            total += 1 + count_symbols(node.row)
        elif isinstance(node, Frac):
            total += 1 + count_symbols(node.num) + count_symbols(node.den)
        else:
            total += 1 + count_symbols(node.body)
    return total
