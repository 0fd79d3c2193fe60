"""`abvoc demo` prints the dashboard's address and its login key when it starts, before it
trains the reference candidates (minutes on a fresh machine), as the README says."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import app.commands.demo
from app.cli import main
from tests.support.ports import free_port


def test_the_key_is_printed_before_the_training(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def training(_ctx: object) -> None:  # stands for the minutes of training: stop there
        raise click.ClickException("training would start here")

    monkeypatch.setattr(app.commands.demo, "ensure_candidates", training)
    port = free_port()
    result = CliRunner().invoke(main, ["demo", "--port", str(port)],
                                env={"ABVOC_DATA_DIR": str(tmp_path / "data")})
    assert "training would start here" in result.output, result.output
    before = result.output.split("training would start here")[0]
    assert f"dashboard: http://127.0.0.1:{port}/dashboard/  (log in with the key abv_" in before
