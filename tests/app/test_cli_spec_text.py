"""`abvoc experiment create --spec` reads its file with Python's JSON parser, which takes what
the API's request check refuses: a lone surrogate escape (`\\ud800`) or NUL in a string. Such a
spec was stored, and `abvoc experiment list` then failed with a traceback on every run (and
PostgreSQL refused the NUL with one)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store.db import Database
from serving.registry import Registry
from tests.app.test_cli_user_mistakes import refused

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "b", "candidate": "b", "weight": 1}]


@pytest.mark.parametrize(("field", "spec"), [
    ("'arms[0].name'", {"arms": [{**ARMS[0], "name": "c\ud800"}, ARMS[1]]}),
    ("'salt'", {"salt": "\ud800", "arms": ARMS}),
    ("'salt'", {"salt": "a\x00b", "arms": ARMS}),
    ("'arms[1].candidate'", {"arms": [ARMS[0], {**ARMS[1], "candidate": "b\ud800"}]}),
])
def test_text_a_store_cannot_hold_is_refused_naming_its_field(
        cli: CliRunner, settings: Settings, field: str, spec: dict) -> None:
    with Database(settings.database_url) as db:
        Registry(db).register("a", "1")
        Registry(db).register("b", "1")
    body = json.dumps({"name": "e", "scope": "s", **spec})  # ASCII: the escapes as written
    refused(cli.invoke(main, ["experiment", "create", "--spec", "-"], input=body),
            field, "must")
    listed = cli.invoke(main, ["experiment", "list"])
    assert listed.exit_code == 0 and "no experiments" in listed.output, listed.output
