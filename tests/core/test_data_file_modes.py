"""The store holds customers' comments and kept inputs: abvoc makes its SQLite file (and so its
-wal and -shm files) readable by the owner only, and the data folder it makes owner-only, as
the secret key already was (a security pass found them 0644 in a 0755 folder)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from core.settings import ensure_secret_key, load_settings
from core.store.db import Database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_and_its_log_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which the files came out 0644
    try:
        folder = tmp_path / "data"
        db = Database(f"sqlite:///{folder / 'abvoc.db'}")
        try:
            with db.engine.begin() as conn:
                conn.execute(text("CREATE TABLE t (x TEXT)"))
                conn.execute(text("INSERT INTO t VALUES ('a customer comment')"))
            assert _mode(folder) == 0o700
            files = [folder / name for name in ("abvoc.db", "abvoc.db-wal", "abvoc.db-shm")]
            assert all(f.exists() for f in files), sorted(os.listdir(folder))
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            db.dispose()
    finally:
        os.umask(old)


def test_the_data_folder_made_for_the_secret_key_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ensure_secret_key(load_settings(env={"ABVOC_DATA_DIR": str(tmp_path / "data")}))
        assert _mode(tmp_path / "data") == 0o700
        assert _mode(tmp_path / "data" / "secret_key") == 0o600
    finally:
        os.umask(old)
