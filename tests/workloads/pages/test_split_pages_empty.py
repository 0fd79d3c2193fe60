"""`abvoc dataset split-pages` on a folder with no readable page: a non-zero exit saying so, and
no output folder (an empty dataset would only mislead an offline test later)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core.errors import AbvocError
from workloads.ocr.pages import split


def test_a_folder_without_pages_is_refused(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a page")
    result = CliRunner().invoke(main, ["dataset", "split-pages", str(empty), "--out",
                                       str(tmp_path / "f1")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "holds no PNG or JPEG pages" in result.output
    assert not (tmp_path / "f1").exists()


def test_a_folder_of_unreadable_pages_is_refused(tmp_path: Path,
                                                 extractors: dict[str, Path]) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.png").write_bytes(b"not a png")
    (pages / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(AbvocError, match="none of the 2 pages .* could be read .*a.png"):
        split.split_pages(pages, tmp_path / "out", extractors["pages-xycut"], "pages-xycut",
                          "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]
