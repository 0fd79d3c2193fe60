import pytest

from core.latex import token_edit_distance, tokenize, validate_latex


def test_tokenize_commands_braces_and_spaces() -> None:
    assert tokenize(r"\frac{1}{x^{2}}") == ["\\frac", "{", "1", "}", "{", "x", "^", "{", "2",
                                           "}", "}"]
    assert tokenize(r"\alpha x + 1") == ["\\alpha", "x", "+", "1"]


@pytest.mark.parametrize("latex", [r"\frac{1}{2}+x^{2}", r"\sqrt{\alpha}-\beta_{n}", "3\\div4=1"])
def test_valid_latex_has_no_problems(latex: str) -> None:
    assert validate_latex(latex) == []


@pytest.mark.parametrize(("latex", "fragment"), [
    (r"\frac{1}{2", "never closed"),
    (r"x}+1", "closes nothing"),
    (r"\gamma+1", "unknown command"),
    (r"x^", "nothing to attach"),
    (r"\frac 12", "braced argument"),
    ("   ", "empty"),
    ("37+7\x07+8", "invisible control or format character (U+0007) at token 5"),
    ("x\u202ey", "(U+202E) at token 2"),
    ("a\u200db", "(U+200D)"),
])
def test_malformed_latex_says_what_is_wrong(latex: str, fragment: str) -> None:
    problems = validate_latex(latex)
    assert any(fragment in p for p in problems), problems


def test_a_command_is_quoted_as_typed() -> None:
    """One backslash, as written (repr doubled it); an invisible character by its code point."""
    assert validate_latex(r"\foo{1}") == [r"unknown command '\foo' at token 1"]
    assert validate_latex("x\\\x07") == [
        r"unknown command '\' followed by U+0007 at token 2"]
    assert validate_latex("x_") == ["'_' at token 2 has nothing to attach"]


def test_token_edit_distance_counts_tokens_not_characters() -> None:
    assert token_edit_distance(r"\alpha+1", r"\alpha+1") == 0.0
    # one of four tokens substituted: \alpha -> \beta is one edit, not several characters
    assert token_edit_distance(r"\alpha+1", r"\beta+1") == pytest.approx(1 / 3)
    assert token_edit_distance("", "1+1") == 1.0


def test_edit_distance_keeps_no_state_however_many_distinct_tokens_it_meets() -> None:
    # A shared vocabulary of one character per token ran out of characters (chr() raised) after
    # about 1.06 million distinct commands in a long-running worker.
    from itertools import islice, product
    from string import ascii_lowercase

    names = islice(product(ascii_lowercase, repeat=5), 1_100_000)
    many = " ".join("\\" + "".join(name) for name in names)
    assert token_edit_distance(many + " x", "x") == pytest.approx(1 - 1 / 1_100_001)
    assert token_edit_distance(r"\frac{1}{x}", r"\frac{1}{y}") == pytest.approx(1 / 7)


def test_composed_and_decomposed_accents_are_one_token() -> None:
    from core.same_answer import edit_distance, same_output

    assert tokenize("a\u0301") == tokenize("\u00e1") == ["\u00e1"]
    assert token_edit_distance("x+a\u0301", "x+\u00e1") == 0.0
    assert same_output("caf\u00e9 au lait", "cafe\u0301  au lait", "text")
    assert edit_distance("cafe\u0301 noir", "caf\u00e9 au lait", "text") == pytest.approx(2 / 3)


def test_core_knows_every_command_the_workload_writes() -> None:
    from core.latex import COMMANDS
    from workloads.ocr.formulas import GREEK, OPERATORS, SQRT

    written = {c for c in (*GREEK, *OPERATORS, SQRT, "\\frac") if c.startswith("\\")}
    assert written <= set(COMMANDS)
