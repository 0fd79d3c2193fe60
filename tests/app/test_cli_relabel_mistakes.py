"""`abvoc relabel ls-export|ls-import|export` refuse mistakes and never leave half a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.settings import Settings
from core.store import Database
from feedback import label_studio
from tests.feedback.test_relabel_export import with_inputs


def test_a_failed_ls_export_keeps_the_previous_export_whole(
        cli: CliRunner, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Database(settings.database_url) as db:
        with_inputs(db, 3)
    folder = tmp_path / "ls"
    assert cli.invoke(main, ["relabel", "ls-export", str(folder)]).exit_code == 0
    before = (folder / "tasks.json").read_bytes()
    real, calls = label_studio._task, []

    def fails_on_the_second(*args: object) -> dict:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")  # a disk filling up half way
        return real(*args)

    monkeypatch.setattr(label_studio, "_task", fails_on_the_second)
    failed = cli.invoke(main, ["relabel", "ls-export", str(folder)])
    assert failed.exit_code != 0
    assert (folder / "tasks.json").read_bytes() == before
    assert len(json.loads(before)) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["files", "tasks.json"]


def test_ls_import_refuses_unknown_candidates_and_empty_queues(
        cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "imp"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    (folder / "new.json").write_text(json.dumps([{"data": {"image": "a.png"}}]))
    for extra, words in ((["--candidate", "nope"], "'nope' is not registered"),
                         (["--candidate", "nope", "--queue", ""], "--queue")):
        result = cli.invoke(main, ["relabel", "ls-import", str(folder), "--tasks", "new.json",
                                   *extra])
        assert result.exit_code != 0 and words in result.output, result.output
        assert "Traceback" not in result.output
    queues = json.loads(cli.invoke(main, ["relabel", "queues", "--json"]).stdout)
    assert all(q["items"] == 0 for q in queues["queues"])


def test_unknown_queue_names_are_refused(cli: CliRunner, tmp_path: Path) -> None:
    for args in (["relabel", "export", "ds", "--queue", "bogus", "--out", str(tmp_path)],
                 ["relabel", "ls-export", str(tmp_path / "ls"), "--queue", "bogus"]):
        result = cli.invoke(main, args)
        assert result.exit_code == 2 and "'bogus' is not a queue" in result.output
    assert not (tmp_path / "ls").exists() and not (tmp_path / "ds").exists()
