"""Every `abvoc keys` command is in the README: `keys list` and `keys revoke` were named
nowhere in it, so an operator could not learn there how to end a leaked key, nor that each API
process keeps refusing it only from 5 s on (app.auth.CACHE_S)."""

from __future__ import annotations

from pathlib import Path

import click

from app.auth import CACHE_S
from app.commands.experiments import keys

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_names_every_keys_command_and_when_a_revocation_holds() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    for name in keys.list_commands(click.Context(keys)):
        assert f"abvoc keys {name}" in text, name
    assert f"refuses it (401) within {CACHE_S:g} s" in text
