"""The candidate pool: each version loaded once, on first use; a slow load holds up that
version's first requests only, never the other candidates'."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from serving.bundles import register_bundle
from serving.pool import CandidatePool
from serving.registry import Registry
from tests.support.bundles import EXAMPLE, FLOWERS, edit


def _bundle(root: Path, name: str, slow_flag: Path | None = None) -> Path:
    folder = root / name
    shutil.copytree(EXAMPLE, folder)
    edit(folder, 'name = "iris-onnx"', f'name = "{name}"')
    if slow_flag is not None:  # slow to import once the flag exists (not at registration)
        post = folder / "post.py"
        post.write_text(f"import pathlib, time\nif pathlib.Path({str(slow_flag)!r}).exists():\n"
                        f"    time.sleep(3)\n" + post.read_text())
    return folder


def test_a_slow_load_holds_up_only_its_own_version(registry: Registry, models: Path,
                                                   tmp_path: Path) -> None:
    flag = tmp_path / "slow"
    register_bundle(registry, models, _bundle(tmp_path, "slow", flag))
    register_bundle(registry, models, _bundle(tmp_path, "quick"))
    flag.touch()
    pool = CandidatePool(registry, models)
    try:
        slow = threading.Thread(target=pool.get, args=("slow",))
        slow.start()
        time.sleep(0.3)  # the slow load is under way
        started = time.monotonic()
        quick = pool.get("quick")
        assert time.monotonic() - started < 2.0, "the quick candidate waited for the slow load"
        assert quick.predict({"features": FLOWERS[:1]}).output in ("setosa", "versicolor",
                                                                   "virginica")
        assert slow.is_alive()
        slow.join(10)
        assert pool.get("slow") is pool.get("slow")  # loaded once, kept
    finally:
        pool.close()
