"""A store a newer abvoc migrated (a revision this code does not know): this node keeps serving
on it (migrations only add), says so, and does not fail in a loop trying to migrate it; a store
behind is still migrated or refused as before."""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from app import close_app, create_app
from app.cli import main
from core.settings import Settings
from core.startup import connect
from core.store import schema
from core.store.db import Database

NEWER = "9999_from_a_newer_abvoc"


def _move_ahead(db: Database) -> str:
    head = schema.head(db)
    with db.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": NEWER})
    return head


def test_a_node_serves_on_a_schema_a_newer_version_migrated(
        settings: Settings, db: Database, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    head = _move_ahead(db)
    assert schema.status(db) == schema.AHEAD
    with caplog.at_level(logging.WARNING, logger="core.startup"):
        services = connect(settings)  # the old code: "Can't locate revision", at every restart
    services.close()
    assert f"at revision {NEWER}, newer than this abvoc knows (its head: {head})" in caplog.text
    assert schema.current(db) == NEWER, "an older node never moves a newer schema"
    app = create_app(settings, test_config={"TESTING": True})
    try:
        client = app.test_client()
        answer = client.get("/readyz")
        assert answer.json["checks"]["database"] == "ok"
        assert f"abvoc db downgrade {head}" in answer.json["schema"]
        assert client.get("/v2/health/ready").status_code == 200
    finally:
        close_app(app)
    env = {"ABVOC_DATABASE_URL": settings.database_url, "ABVOC_DATA_DIR": str(tmp_path)}
    listed = CliRunner().invoke(main, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and "newer than this abvoc knows" in listed.stderr
    # `db upgrade`, what an operator runs first, says the same (it gave Alembic's bare "Can't
    # locate revision", which reads like a corrupt store).
    upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 2 and "newer than this abvoc knows" in upgraded.output
    assert f"abvoc db downgrade {head}" in upgraded.output


def test_a_store_behind_is_migrated_as_a_node_starts(settings: Settings,
                                                       db: Database) -> None:
    schema.downgrade(db, "-1")
    assert schema.status(db) == schema.BEHIND
    app = create_app(settings, test_config={"TESTING": True})  # it migrates as it starts
    try:
        assert schema.status(db) == schema.CURRENT
        assert app.test_client().get("/readyz").json["checks"]["database"] == "ok"
    finally:
        close_app(app)


REMOVING = ("drop_table", "drop_column", "alter_column", "rename_table")
# A text column made wider: older nodes' values still fit, and they read it as before.
WIDENS = re.compile(r"alter_column\('\w+', existing_type=sa\.String\(length=(\d+)\),\s*"
                    r"type_=sa\.String\(length=(\d+)\)")


def test_migrations_since_0005_only_add() -> None:
    """What lets older nodes serve on a newer schema: no upgrade removes or changes what their
    code reads (0004 dropped a table no release since reads)."""
    folder = Path(schema.__file__).resolve().parents[2] / "migrations" / "versions"
    checked = 0
    for path in sorted(folder.glob("0*.py")):
        if path.name < "0005":
            continue
        text = path.read_text()
        upgrade = text[text.index("def upgrade"):text.index("def downgrade")]
        for was, now in WIDENS.findall(upgrade):
            assert int(now) > int(was), path.name
        upgrade = WIDENS.sub("", upgrade)
        assert not [op for op in REMOVING if op in upgrade], path.name
        checked += 1
    assert checked >= 14  # 0005 to 0021 (some numbers were never used)


LATER = """\"\"\"A migration that appears on disk under a running process.

Revision ID: 9998
Revises: {down}
\"\"\"

revision = "9998"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
"""


def test_a_migration_added_under_a_running_process_leaves_it_ready(
        settings: Settings, db: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-place package upgrade adds a migration file before the restart: the running
    process's code still knows the head it loaded, and the store is at it, so it stays ready.
    The scripts were read from disk at every `/readyz`, so every old node went "schema not
    migrated" at once (the exploratory pass's F14)."""
    scripts = tmp_path / "migrations"
    shutil.copytree(Path(schema.__file__).resolve().parents[2] / "migrations", scripts,
                    ignore=shutil.ignore_patterns("__pycache__"))
    # The `migrations` package is that copy for this process, as the installed one would be.
    spec = importlib.util.spec_from_file_location(
        "migrations", scripts / "__init__.py", submodule_search_locations=[str(scripts)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    monkeypatch.setitem(sys.modules, "migrations", package)
    app = create_app(settings, test_config={"TESTING": True})
    try:
        client = app.test_client()
        assert client.get("/readyz").json["checks"]["database"] == "ok"
        ours = schema.head(db)
        (scripts / "versions" / "9998_added_later.py").write_text(LATER.format(down=ours))
        answer = client.get("/readyz")
        assert answer.json["checks"]["database"] == "ok", answer.json
        assert client.get("/v2/health/ready").status_code == 200
        assert schema.status(db) == schema.CURRENT and schema.head(db) == ours
    finally:
        close_app(app)
    # A process started now runs the new code: for it the store is behind, and it migrates.
    schema._known_at.cache_clear()
    assert schema.head(db) == "9998" and schema.status(db) == schema.BEHIND
    schema.upgrade(db)
    assert schema.current(db) == "9998" and schema.status(db) == schema.CURRENT
