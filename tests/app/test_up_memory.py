"""`abvoc up` supervises the service for its whole life, so what it imports stays loaded: on a
store with candidates it must not load torch (it did, 0.8 GB, before looking whether training
was needed at all); training on a fresh store runs in a child process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.store import schema
from core.store.db import Database
from serving.registry import Registry

REPO = Path(__file__).resolve().parents[2]
CHECK = """
import sys
from app.cli import Context
from app.commands.system import ensure_candidates
ensure_candidates(Context(None))
print("torch loaded" if "torch" in sys.modules else "torch not loaded")
print("onnxruntime loaded" if "onnxruntime" in sys.modules else "onnxruntime not loaded")
"""


def test_a_store_with_candidates_loads_no_model_library(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'abvoc.db'}"
    with Database(url) as db:
        schema.upgrade(db)
        Registry(db).register("somebody-else", "1", description="", artifacts="/nowhere")
    env = {**os.environ, "ABVOC_DATA_DIR": str(data), "ABVOC_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["torch not loaded", "onnxruntime not loaded"]
    assert "training" not in done.stdout
