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


def _version(root: Path, version: int) -> Path:
    folder = root / f"v{version}" / "iris-onnx"
    shutil.copytree(EXAMPLE, folder)
    edit(folder, 'version = "1"', f'version = "{version}"')
    return folder


def test_versions_nobody_asks_for_are_unloaded_but_the_newest(
        registry: Registry, models: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Every version a process ever served stayed loaded (its session, its batcher thread):
    retiring one or registering a newer one let nothing go."""
    import serving.pool as pool_module

    now = [1000.0]
    monkeypatch.setattr(pool_module, "monotonic", lambda: now[0])
    pool = CandidatePool(registry, models, refresh_s=0.0)
    threads = threading.active_count()
    try:
        for v in range(1, 6):
            register_bundle(registry, models, _version(tmp_path, v))
            pinned = pool.get("iris-onnx", "1")  # an experiment's pinned arm, still in use
            assert pool.get("iris-onnx").predict({"features": FLOWERS[:1]}).output
            if v > 2:
                registry.retire("iris-onnx", str(v - 1))
            now[0] += 400  # each version idle past IDLE_UNLOAD_S after the next one came
        now[0] += pool_module.SWEEP_EVERY_S + 1
        pool.get("iris-onnx")  # a look: let go the idle ones
        now[0] += pool_module.SWEEP_EVERY_S + 1
        newest = pool.get("iris-onnx")  # the next look closes them
        assert sorted(v for _, v in pool._loaded) == ["1", "5"]
        assert newest is pool.get("iris-onnx", "5") and pinned is pool.get("iris-onnx", "1")
        assert threading.active_count() <= threads + 2  # the two versions' batchers at most
        # A version let go is loaded again when asked for.
        assert pool.get("iris-onnx", "3").predict({"features": FLOWERS[:1]}).output
        # The newest stays loaded however long nobody asks.
        now[0] += 10 * pool_module.IDLE_UNLOAD_S
        pool.get("iris-onnx", "3")
        now[0] += pool_module.SWEEP_EVERY_S + 1
        pool.get("iris-onnx", "3")
        assert sorted(v for _, v in pool._loaded) == ["3", "5"]
    finally:
        pool.close()
