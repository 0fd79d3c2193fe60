"""A Chromium that hangs, or a binary that cannot run, fails the report's PDF with one line
(exit 2 from the command), leaves no partial file behind, and a hung one is stopped with every
process it started: it was a TimeoutExpired or OSError traceback, and its renderers ran on."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.errors import AbvocError, NotFound
from dashboards.report import render, report_file, write_report

WEEK = "2026-W10"  # an empty week: the HTML is quick, only the PDF is in question


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _browser(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "chromium"
    path.write_text(body)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_hung_chromium_is_stopped_with_its_children(dash_app: Flask, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pids = tmp_path / "renderer.pid"
    browser = _browser(tmp_path, f"#!/bin/sh\nsleep 300 &\necho $! > {pids}\nwait\n")
    monkeypatch.setenv("ABVOC_CHROMIUM", str(browser))
    monkeypatch.setattr(render, "PDF_TIMEOUT_S", 2)
    folder = tmp_path / "reports"
    with pytest.raises(AbvocError, match="did not print the report within 2 s"):
        write_report(dash_app.extensions["abvoc"].db, folder, WEEK)
    assert not _alive(int(pids.read_text()))
    assert sorted(p.name for p in folder.iterdir()) == [f"{WEEK}.html"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_browser_that_cannot_run_is_one_line(dash_app: Flask, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dash_app.extensions["abvoc"].settings
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    # Executable, but neither a program nor a script: exec refuses it.
    monkeypatch.setenv("ABVOC_CHROMIUM", str(_browser(tmp_path, "not a program\n")))
    done = CliRunner().invoke(main, ["report", "--week", WEEK, "--json"])
    assert done.exit_code == 2, (done.output, done.exception)
    error = done.stderr.splitlines()[-1]
    assert error.startswith("abvoc: error: Chromium ") and "cannot run" in error
    assert "ABVOC_CHROMIUM" in error and "Traceback" not in done.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rewrite_whose_pdf_fails_leaves_no_older_pdf(dash_app: Flask, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`--force` rewrote the HTML and kept the last PDF beside it: two reports of different
    figures, and the PDF, which says the week is written, kept later runs from redoing it."""
    db, folder = dash_app.extensions["abvoc"].db, tmp_path / "reports"
    first = write_report(db, folder, WEEK)
    assert first.pdf.is_file()
    monkeypatch.setenv("ABVOC_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(AbvocError, match="no Chromium"):
        write_report(db, folder, WEEK, force=True)
    assert first.html.is_file() and not first.pdf.exists()
    # Asked for, the missing PDF says what to do first: running the command again alone fails.
    with pytest.raises(NotFound, match="no Chromium could print it; install one"):
        report_file(folder, WEEK, "pdf")
    assert report_file(folder, WEEK, "html") == first.html
    monkeypatch.delenv("ABVOC_CHROMIUM")
    assert not write_report(db, folder, WEEK).skipped and first.pdf.is_file()
