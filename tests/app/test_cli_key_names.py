"""A key's name is its annotator's name on every label (`<name>:<prefix>`): a blank one was
taken and its labels read as by a blank annotator on the Relabeling page and in exports."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli import main


@pytest.mark.parametrize("name", [" ", "   ", "\u00a0\u3000"])
def test_a_blank_key_name_is_refused(fresh_cli: CliRunner, name: str) -> None:
    result = fresh_cli.invoke(main, ["keys", "create", "--scopes", "annotate", "--name", name])
    assert result.exit_code == 2, result.output
    assert "--name" in result.output and "is blank" in result.output
    assert json.loads(fresh_cli.invoke(main, ["keys", "list", "--json"]).output) == []


def test_no_name_and_a_name_are_taken(fresh_cli: CliRunner) -> None:
    for args in ([], ["--name", "alice"]):
        assert fresh_cli.invoke(main, ["keys", "create", "--scopes", "annotate", *args]
                                ).exit_code == 0
    names = {k["name"] for k in json.loads(fresh_cli.invoke(main, ["keys", "list", "--json"]
                                                            ).output)}
    assert names == {"", "alice"}
