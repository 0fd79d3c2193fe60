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


def test_a_list_prints_as_a_config_file_takes_it_and_an_unset_token_is_null(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It printed `expect_parts = ('relay', 'worker')` (a Python tuple a config file refuses)
    and, as JSON, an unset metrics token as the string "(unset)"."""
    for var in ("ABVOC_CONFIG", "ABVOC_DATABASE_URL", "ABVOC_METRICS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_EXPECT_PARTS", "relay,worker")
    human = CliRunner().invoke(main, ["config"])
    line = next(x for x in human.output.splitlines() if x.startswith("expect_parts = "))
    assert line == 'expect_parts = ["relay", "worker"]'
    assert "metrics_token = (unset)" in human.output
    pasted = tmp_path / "abvoc.toml"
    pasted.write_text(line + "\n")
    monkeypatch.delenv("ABVOC_EXPECT_PARTS")
    again = CliRunner().invoke(main, ["--config", str(pasted), "config", "--json"])
    assert again.exit_code == 0, again.output
    machine = json.loads(again.output)
    assert machine["expect_parts"] == ["relay", "worker"] and machine["metrics_token"] is None
