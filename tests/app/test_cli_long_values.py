"""A 100,000-character argument on the `abvoc` command line: refused in one short line, the
value shortened (core.text.shown), never echoed whole onto the terminal."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import main

LONG = "n" * 100_000


@pytest.mark.parametrize("args", [
    ["candidates", "show", LONG], ["candidates", "retire", LONG], ["offline-test", LONG],
    ["candidates", "show", "iris-onnx", "--version", LONG]])
def test_an_unknown_candidate_of_100k_characters_is_shown_shortened(
        fresh_cli: CliRunner, args: list[str]) -> None:
    """`candidates show <100k chars>` printed all 100,000 characters back."""
    result = fresh_cli.invoke(main, args)
    assert result.exit_code == 2, result.output[:300]
    assert "is not registered" in result.output and "100000 characters" in result.output
    assert len(result.output) < 1000, len(result.output)


@pytest.mark.parametrize("args", [
    ["events", "replay", "--topic", LONG], ["events", "replay", "--reason-contains", LONG],
    ["db", "upgrade", LONG], ["db", "downgrade", LONG]])
def test_a_100k_character_filter_or_revision_is_shown_shortened(
        fresh_cli: CliRunner, args: list[str]) -> None:
    """`events replay --topic` and `db upgrade REV` (in Alembic's words too) echoed it whole."""
    result = fresh_cli.invoke(main, args)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output[:300]
    assert "100000 characters" in result.output, result.output[:300]
    assert len(result.output) < 1000, len(result.output)
