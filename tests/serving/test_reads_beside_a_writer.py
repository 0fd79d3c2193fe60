"""The serving path's lookups only read, so on SQLite they never queue behind a writer.

Keys, candidates, the router's experiments and the guardrail windows are looked up while
requests are served, beside the group commit and the relay that write. A lookup begun as a
write transaction would wait for the write lock (up to SQLite's busy timeout) and hold up the
request it serves; read-only units of work read their snapshot instead.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.auth import KeyCache, create_key
from core.store import schema
from core.store.db import Database
from serving.experiments import Experiments
from serving.guardrails import GuardrailMonitor
from serving.registry import Registry

ARMS = [{"name": "control", "candidate": "a", "weight": 1, "control": True},
        {"name": "treatment", "candidate": "b", "weight": 1}]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    path = tmp_path / "abvoc.db"
    db = Database(f"sqlite:///{path}")
    schema.upgrade(db)
    yield db, path
    db.dispose()


def test_lookups_answer_while_another_connection_holds_the_write_lock(
    store: tuple[Database, Path],
) -> None:
    db, path = store
    registry = Registry(db)
    registry.register("a", "1")
    registry.register("b", "1")
    experiments = Experiments(db)
    exp = experiments.start(experiments.create({"name": "e", "scope": "s", "arms": ARMS})["id"])
    key = create_key(db, ["predict"])["key"]
    monitor = GuardrailMonitor(experiments, db)
    lookups: dict[str, Callable[[], object]] = {
        "a key's scopes": lambda: KeyCache(db).scopes(key),
        "a key by id": lambda: KeyCache(db).identify(key),
        "the newest version": lambda: registry.get("a").version,
        "the candidates": lambda: len(registry.list()),
        "the active experiments": lambda: len(experiments.active()),
        "an experiment": lambda: experiments.get(exp["id"])["status"],
        "a guardrail window": lambda: monitor.window_of(exp["id"], "treatment"),
    }
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a writer mid-transaction: the group commit, a relay
    try:
        for what, lookup in lookups.items():
            start = time.monotonic()
            answer = lookup()
            took = time.monotonic() - start
            # A lookup that asked for the write lock would wait QUICK_WAIT_S (2 s), then up to
            # the busy timeout (30 s), and fail.
            assert took < 0.5, f"{what} waited {took:.2f} s behind the writer"
            assert answer is not None, what
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert KeyCache(db).scopes(key) == frozenset({"predict"})
    assert registry.get("b").name == "b"
    assert [e["id"] for e in experiments.active()] == [exp["id"]]
