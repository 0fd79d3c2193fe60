"""Two operators at once on PostgreSQL, each with its own store connection (as two processes):
two `abvoc relabel ls-import` of the same new data make its items once, the second import
reusing them; two `abvoc relabel export NAME` never break on one version number, the second
taking the next one or finding the first's equal version unchanged."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from core.store.db import Database
from core.store.models import PredictionInput, RelabelItem, RelabelLabel
from feedback import export
from feedback.export import export_snapshot
from feedback.label_studio import import_tasks
from tests.feedback.test_label_studio_import import annotated, other_item, write
from tests.feedback.test_relabel_export import png
from tests.feedback.test_typed_export import item
from tests.support.flow import joined
from tests.support.postgres import PostgresServer

PETS = {"output": {"type": "label", "classes": ["cat", "dog", "owl"]}}


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database(migrated=True)
    yield url
    postgres.drop_database(url)


def at_once(url: str, job: Callable[[Database], Any], n: int = 2) -> list[Any]:
    """`job` in `n` threads released together, each with its own Database; each one's result,
    or the exception it raised."""
    start = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        with Database(url) as db:
            start.wait()
            try:
                out[i] = job(db)
            except BaseException as exc:  # noqa: BLE001 - the test reports what each got
                out[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    joined(threads, 60)
    return out


def test_two_imports_of_the_same_new_data_make_its_items_once(pg_url: str,
                                                              tmp_path: Path) -> None:
    with Database(pg_url) as db:
        other_item(db, "pets", PETS)  # the candidate new data is labeled for
    for n in range(4):  # the old code lost every round
        folder = tmp_path / f"imp{n}"
        folder.mkdir()
        tasks = []
        for i in range(20):
            (folder / f"{i}.png").write_bytes(png(1000 * n + i))
            tasks.append({"data": {"image": f"{i}.png"}, "annotations": [annotated("owl", 7)]})
        write(folder, tasks)
        got = at_once(pg_url, lambda db, f=folder: import_tasks(db, f, candidate="pets"))
        errors = [g for g in got if isinstance(g, BaseException)]
        assert not errors, f"round {n}: {errors[0]!r}"
        # One import made the items and labeled them; the other found both done.
        assert sorted(g["new_items"] for g in got) == [0, 20], got
        assert sorted(g["labels"] for g in got) == [0, 20], got
        assert sorted(g["skipped"]["already_labeled"] for g in got) == [0, 20], got
    with Database(pg_url) as db, db.reading() as s:
        imported = select(RelabelItem.id).where(RelabelItem.prediction_id.like("import:%"))
        assert s.scalar(select(func.count()).select_from(imported.subquery())) == 80
        # Each imported image kept once, beside the input the pets item keeps.
        assert s.scalar(select(func.count()).select_from(PredictionInput)) == 80 + 1
        per_item = s.execute(select(RelabelLabel.item_id, func.count())
                             .group_by(RelabelLabel.item_id)).all()
        assert len(per_item) == 80 and {c for _, c in per_item} == {1}


def test_two_imports_listing_the_same_data_in_other_orders_both_land(pg_url: str,
                                                                    tmp_path: Path) -> None:
    """Two annotators' exports of the same new images, one listed backwards: each import took
    its items' locks in its file's order, and PostgreSQL broke the deadlock by failing one."""
    with Database(pg_url) as db:
        other_item(db, "pets", PETS)
    for n in range(4):
        folders = [tmp_path / f"r{n}-{who}" for who in (7, 8)]
        for folder, who in zip(folders, (7, 8), strict=True):
            folder.mkdir()
            for i in range(20):
                (folder / f"{i}.png").write_bytes(png(5000 + 100 * n + i))
            order = range(20) if who == 7 else reversed(range(20))
            write(folder, [{"data": {"image": f"{i}.png"}, "annotations": [annotated("owl", who)]}
                           for i in order])
        turns = itertools.count()  # the first thread imports the first folder
        got = at_once(pg_url, lambda db, t=turns, f=folders: import_tasks(
            db, f[next(t)], candidate="pets"))
        errors = [g for g in got if isinstance(g, BaseException)]
        assert not errors, f"round {n}: {errors[0]!r}"
        assert sum(g["new_items"] for g in got) == 20 and [g["labels"] for g in got] == [20, 20]


def test_two_exports_at_once_make_one_version_of_one_content(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each thread names its temporary folder as a process of its own would (by its pid).
    monkeypatch.setattr(export, "os", SimpleNamespace(getpid=threading.get_ident))
    out = tmp_path / "datasets"
    with Database(pg_url) as db:
        item(db, "writer", 0, label="w0")
    for n in range(1, 6):  # a label more before each pair: each pair has a new content
        with Database(pg_url) as db:
            item(db, "writer", n, label=f"w{n}")
        got = at_once(pg_url, lambda db: export_snapshot(db, out, "dsx"))
        errors = [g for g in got if isinstance(g, BaseException)]
        assert not errors, f"round {n}: {errors[0]!r}"
        made, same = sorted(got, key=lambda g: g["unchanged"])
        assert not made["unchanged"] and made["version"] == n, got
        # The second found the first's version, of its own content: "unchanged, still vN".
        assert same["unchanged"] and same["version"] == n and same["path"] == made["path"]
        assert same["content_hash"] == made["content_hash"]
    folder = out / "dsx"
    assert sorted(p.name for p in folder.iterdir()) == [f"v{n}" for n in range(1, 6)]
    assert all((folder / f"v{n}" / "version.json").is_file() for n in range(1, 6))


def test_an_export_whose_number_was_taken_meanwhile_takes_the_next(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving the race above rarely hits: another export placed the number this one
    picked, with other content (a label changed between their reads)."""
    out = tmp_path / "datasets"
    with Database(pg_url) as db:
        item(db, "writer", 0, label="w0")
        first = export_snapshot(db, out, "dsx")
        item(db, "writer", 1, label="w1")
        real = export._next_version
        calls: list[int] = []

        def stale(folder: Path) -> tuple[int, dict[str, Any] | None]:
            calls.append(1)  # the first listing was read before the other export's rename
            return (1, None) if len(calls) == 1 else real(folder)

        monkeypatch.setattr(export, "_next_version", stale)
        second = export_snapshot(db, out, "dsx")
        assert first["version"] == 1 and not second["unchanged"] and second["version"] == 2
        assert second["path"] == str(out / "dsx" / "v2") and len(calls) == 2
        assert '"version": 2' in (out / "dsx" / "v2" / "version.json").read_text()
        calls.clear()
        again = export_snapshot(db, out, "dsx")  # the same content as v2, from a stale list
        assert again["unchanged"] and again["version"] == 2
    assert sorted(p.name for p in (out / "dsx").iterdir()) == ["v1", "v2"]
