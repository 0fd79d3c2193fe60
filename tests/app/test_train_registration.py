"""`abvoc train` says what registering did (a version kept, or kept retired) instead of
claiming a fresh registration; training commands check the store before the long work."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main

TINY = ["--n-train", "20", "--epochs", "1"]


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("ABVOC_DATABASE_URL", "ABVOC_CONFIG", "ABVOC_MODEL_STORE", "ABVOC_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_retraining_a_retired_version_says_it_stays_retired(data: Path) -> None:
    cli = CliRunner()
    assert cli.invoke(main, ["db", "upgrade"]).exit_code == 0
    first = cli.invoke(main, ["train", "ocr-small-printed", *TINY])
    assert first.exit_code == 0, first.output
    assert "already registered" not in first.output
    again = cli.invoke(main, ["train", "ocr-small-printed", *TINY])
    assert again.exit_code == 0, again.output
    assert "was already registered (the same trained files): kept" in again.output
    assert cli.invoke(main, ["candidates", "retire", "ocr-small-printed"]).exit_code == 0
    retired = cli.invoke(main, ["train", "ocr-small-printed", *TINY, "--json"])
    assert '"registration": "retired"' in retired.output
    human = cli.invoke(main, ["train", "ocr-small-printed", *TINY])
    assert "was already registered and is retired: it stays retired" in human.output
    assert "another --seed" in human.output


@pytest.mark.parametrize(("target", "args"), [
    ("workloads.ocr.workflow.train_candidate", ["train", "ocr-small-printed", *TINY]),
    ("workloads.ocr.pages.workflow.build_extractors", ["pages", "train"]),
    ("workloads.gameplay.build.build", ["workloads", "gameplay", "build", "--out", "g",
                                        "--register"]),
])
def test_the_store_is_checked_before_training(data: Path, monkeypatch: pytest.MonkeyPatch,
                                              target: str, args: list[str]) -> None:
    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("trained before the store was checked")

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(f"{module}.{name}", never)
    cli = CliRunner()
    result = cli.invoke(main, args)  # no store yet
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    assert cli.invoke(main, ["db", "upgrade"]).exit_code == 0
    assert cli.invoke(main, ["db", "downgrade"]).exit_code == 0  # one migration behind
    behind = cli.invoke(main, args)
    assert behind.exit_code == 2 and "abvoc db upgrade" in behind.output, behind.output
