"""A bundle's Python stages run from their source: registering reads and writes no bytecode
cache in the team's folder or the registry's copy, so racing registrations of one folder never
copy a cache file another's import is writing, and a planted `.pyc` never runs."""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import threading
from pathlib import Path

import pytest

from core.errors import AbvocError
from serving.bundles import BundleRunner, register_bundle
from serving.registry import Registry
from tests.support.bundles import FLOWERS


@pytest.fixture(autouse=True)
def writes_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a plain interpreter does (PYTHONDONTWRITEBYTECODE may be set where the tests run)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def _caches(folder: Path) -> list[Path]:
    return sorted(folder.rglob("__pycache__"))


def test_registering_a_folder_leaves_no_bytecode_in_it_or_the_copy(
        registry: Registry, models: Path, bundle: Path) -> None:
    registered = register_bundle(registry, models, bundle)
    BundleRunner.open(Path(registered.artifacts)).close()
    assert _caches(bundle) == []
    assert _caches(Path(registered.artifacts)) == []


def test_a_planted_cache_is_neither_copied_nor_run(registry: Registry, models: Path,
                                                   bundle: Path) -> None:
    # Bytecode of other code where Python would look for post.py's, marked valid whatever the
    # source says (an unchecked hash): an import through the cache would run it.
    source = bundle / "post.py"
    planted = bundle / "planted.py"
    planted.write_text(source.read_text().replace('"setosa"', '"planted"'))
    cache = importlib.util.cache_from_source(str(source))
    py_compile.compile(str(planted), cfile=cache,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    planted.unlink()
    registered = register_bundle(registry, models, bundle)
    assert _caches(Path(registered.artifacts)) == []
    with BundleRunner.open(bundle) as runner:  # loaded where the cache lies, too
        assert runner.predict({"features": FLOWERS[:1]})["label"].tolist() == ["setosa"]


def test_racing_registrations_of_a_folder_copy_no_half_written_cache(
        registry: Registry, models: Path, bundle: Path) -> None:
    for _ in range(5):  # the race that lost a file was rare: tried a few times over
        assert _race(registry, models, bundle, 4) == []
        assert _caches(bundle) == []


def _race(registry: Registry, models: Path, bundle: Path, n: int) -> list[BaseException]:
    """`n` registrations of the folder at once: the errors other than the losers' conflicts."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def register() -> None:
        barrier.wait()
        try:
            register_bundle(registry, models, bundle)
        except AbvocError:
            pass  # a loser's conflict
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors
