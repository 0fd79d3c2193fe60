"""`abvoc candidates list` shows a page extraction candidate's headline figure (mAP), which its
offline results hold under names no output type's columns use."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import load_settings
from core.store import Database
from serving.registry import Registry


def test_pages_candidates_show_their_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ABVOC_DATABASE_URL", "ABVOC_CONFIG", "ABVOC_MODEL_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    cli = CliRunner()
    assert cli.invoke(main, ["db", "upgrade"]).exit_code == 0
    settings = load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "data")})
    registry = Registry(Database(settings.database_url))
    registry.register("pages-xycut", "1", description="projection cuts")
    registry.set_offline_results("pages-xycut", "1", {
        "task": "formula-extraction", "overall": {"n": 12, "precision_50": 0.91,
                                                  "recall_50": 0.88, "map": 0.612,
                                                  "latency_p99_ms": 16.4}})
    header, row = cli.invoke(main, ["candidates", "list"]).stdout.splitlines()
    assert "mAP 0.612" in row and "16.4" in row
    start = header.index("offline")
    assert row[start:].startswith("mAP 0.612")
