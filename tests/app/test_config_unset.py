"""`abvoc config` prints an unset setting as (unset), as it does the secrets, not as None."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main


def test_unset_settings_read_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ABVOC_DEFAULT_CANDIDATE", "ABVOC_CONFIG", "ABVOC_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    human = CliRunner().invoke(main, ["config"])
    assert human.exit_code == 0, human.output
    assert "default_candidate = (unset)" in human.output and "None" not in human.output
    machine = CliRunner().invoke(main, ["config", "--json"])
    assert json.loads(machine.output)["default_candidate"] is None
