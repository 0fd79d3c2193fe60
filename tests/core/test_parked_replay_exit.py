"""`abvoc events replay` exits non-zero while events stay parked (a script must see it), and a
--topic matching no parked event names the topics that have some."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.store import schema
from core.store.db import Database
from tests.core.test_parked_events import N, _park_with_wrong_key
from tests.support.flow import SECRET


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the command's exit status does not depend on the store."""
    url = f"sqlite:///{tmp_path / 'abvoc.db'}"
    with Database(url, create=True) as db:
        schema.upgrade(db)
    return url


@pytest.fixture
def parked(db: Database, database_url: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Database:
    _park_with_wrong_key(db)
    monkeypatch.setenv("ABVOC_DATABASE_URL", database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABVOC_TOPIC_PREFIX", "t")
    monkeypatch.delenv("ABVOC_BUS_URL", raising=False)
    return db


def test_events_left_parked_exit_non_zero(parked: Database,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_SECRET_KEY", "still-the-wrong-key")
    wrong = CliRunner().invoke(main, ["events", "replay", "--json"])
    assert wrong.exit_code != 0, wrong.output
    assert json.loads(wrong.stdout)["still_parked"] == N
    assert f"{N} events stay parked" in wrong.stderr and "Traceback" not in wrong.output
    monkeypatch.setenv("ABVOC_SECRET_KEY", SECRET)
    right = CliRunner().invoke(main, ["events", "replay"])
    assert right.exit_code == 0 and f"applied {N}" in right.output, right.output


def test_an_unknown_topic_names_the_parked_ones(parked: Database,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_SECRET_KEY", SECRET)
    result = CliRunner().invoke(main, ["events", "replay", "--topic", "nope"])
    assert result.exit_code != 0, result.output
    assert "no parked event is from topic 'nope'; parked events are from t.corrections" \
        in result.output
