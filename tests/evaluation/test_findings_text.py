"""What findings and help texts say: never a sentence that contradicts itself."""

from __future__ import annotations

from click.testing import CliRunner

from app.cli import Finite, main
from evaluation.findings import distinct_percents


def test_two_shares_are_shown_with_enough_decimals_to_differ() -> None:
    # "answers 'idle' on 98% … the true share of 'idle' at about 98%: it over-predicts"
    assert distinct_percents(0.984, 0.980) == ("98.4%", "98.0%")
    assert distinct_percents(0.61, 0.30) == ("61%", "30%")
    assert distinct_percents(0.98004, 0.98001) == ("98.004%", "98.001%")
    assert distinct_percents(0.5, 0.5) == ("50.000%", "50.000%")


def test_a_number_options_range_is_said_in_words_never_none() -> None:
    shown = CliRunner().invoke(main, ["metrics", "define", "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "None" not in shown.output and "[-2^53<=x<=2^53]" in shown.output
    assert Finite()._describe_range() == "any finite number"  # click would say x<=None
