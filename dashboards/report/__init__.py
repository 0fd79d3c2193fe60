"""The weekly evaluation report: files in ``<data_dir>/reports/`` named by ISO week
(``2026-W48.html``, ``2026-W48.pdf``), written by ``abvoc report`` and by the schedule in
``abvoc up``; the API and the dashboard list and serve them.

A week is written once: the PDF is written last, so its presence means the week is done, and a
second run skips it unless forced. Files are written under a temporary name and renamed, so a
reader never sees half a report.

The current week can be written so far (``abvoc report --to-date``): ``2026-W49-to-date.html``
and ``.pdf``, rewritten at each run, up to the end of the current hour, and deleted once the
week's whole report is written.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import AbvocError, NotFound
from core.store.db import Database
from dashboards.report.render import html_to_pdf, render_html
from evaluation.weekly import (
    TO_DATE,
    WEEK_PATTERN,
    current_week,
    last_full_week,
    parse_week,
    so_far,
    week_bounds,
    weekly_data,
)

log = logging.getLogger("abvoc.report")
FORMATS = ("html", "pdf")
_FILE = re.compile(rf"^({WEEK_PATTERN})({TO_DATE})?\.(html|pdf)$")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""Sent with a served report's HTML: it runs no script and loads nothing from anywhere, even if
escaping ever failed."""
DUE_AFTER = timedelta(hours=6)
"""A week's report is due on the Monday after it at 06:00 UTC, when late events are in."""


@dataclass(frozen=True)
class Written:
    week: str
    html: Path
    pdf: Path
    skipped: bool
    to_date: bool = False


def _unfinished(week: str, end: datetime, now: datetime) -> str:
    return (f"week {week} ends on {end:%Y-%m-%d %H:%M} UTC; a report covers a finished week "
            f"(the last one is {last_full_week(now)}), or the current week so far "
            "(`abvoc report --to-date`)")


def reports_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "reports"


def _path(folder: Path, week: str, fmt: str, to_date: bool = False) -> Path:
    """A report's file: ``2026-W48.pdf``, or ``2026-W49-to-date.pdf`` for a week so far."""
    return folder / f"{week}{TO_DATE if to_date else ''}.{fmt}"


def write_report(db: Database, folder: Path, week: str | None = None, *, force: bool = False,
                 now: datetime | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 to_date: bool = False) -> Written:
    """Write the HTML and PDF of ``week`` (default: the last full week) unless already there;
    `progress` is told the experiments gathered so far (see :func:`weekly_data`). With
    `to_date`, the current week (or ``week``, if it is the current one) so far, written again
    at each call."""
    now = now or datetime.now(UTC)
    if to_date:
        week = week or current_week(now)
        until: datetime | None = so_far(week, now)
    else:
        week = week or last_full_week(now)
        end = week_bounds(week)[1]
        if end > now:
            raise AbvocError(_unfinished(week, end, now))
        until = None
    folder.mkdir(parents=True, exist_ok=True)
    html, pdf = _path(folder, week, "html", to_date), _path(folder, week, "pdf", to_date)
    if not to_date and pdf.exists() and html.exists() and not force:
        return Written(week, html, pdf, skipped=True)
    with db.session() as s:
        data = weekly_data(s, week, now=now, progress=progress, until=until)
    # Its own temporary name: two writers of one week so far (two admins, two processes) each
    # rename a whole file, and the last one's stays.
    tmp = html.with_suffix(f".html.{os.getpid()}-{threading.get_ident()}.part")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(html)
    try:
        html_to_pdf(html, pdf)
    except AbvocError:
        # A PDF printed before no longer shows what the HTML does, and its presence says the
        # week is written: a later run must print it again.
        pdf.unlink(missing_ok=True)
        raise
    if not to_date:  # the whole week replaces what was written of it so far
        for fmt in FORMATS:
            _path(folder, week, fmt, to_date=True).unlink(missing_ok=True)
    log.info("weekly report %s written to %s", html.stem, folder)
    return Written(week, html, pdf, skipped=False, to_date=to_date)


def due_week(now: datetime) -> str:
    """The week whose report is due at ``now``: the last full week once its Monday 06:00 has
    passed, else the one before it."""
    return last_full_week(now.astimezone(UTC) - DUE_AFTER)


def write_due_report(db: Database, folder: Path, now: datetime | None = None) -> Written:
    """The due week's report, once (later calls find it written)."""
    return write_report(db, folder, due_week(now or datetime.now(UTC)), now=now)


def write_scheduled(db: Database, folder: Path, to_date_every: timedelta | None,
                    now: datetime | None = None) -> list[Written]:
    """What `abvoc up` runs every hour: the due week's report once, then the current week's so
    far where it is missing or `to_date_every` old (None: only on demand), so the Reports page
    shows this week's figures without anyone asking for them. Returns the reports written; one
    that fails (Chromium missing) does not stop the other, and its error is raised after."""
    now = now or datetime.now(UTC)
    written: list[Written] = []
    failed: list[Exception] = []
    try:
        written += [done for done in [write_due_report(db, folder, now)] if not done.skipped]
    except Exception as exc:  # noqa: BLE001 - raised once the week so far had its turn
        failed.append(exc)
    if to_date_every is not None:
        # Written when either file is missing (a PDF Chromium failed to print is tried again
        # each hour, as a whole week's is) or the HTML, written first, is that old.
        week = current_week(now)
        html, pdf = _path(folder, week, "html", True), _path(folder, week, "pdf", True)
        try:
            if not (html.exists() and pdf.exists()) or \
                    now - datetime.fromtimestamp(html.stat().st_mtime, UTC) >= to_date_every:
                written.append(write_report(db, folder, now=now, to_date=True))
        except Exception as exc:  # noqa: BLE001 - both failures are told
            failed.append(exc)
    if failed:
        for also in failed[1:]:
            log.error("the week so far's report failed too: %s", also)
        raise failed[0]
    return written


def list_reports(folder: Path) -> list[dict[str, object]]:
    """The written reports, newest week first (a week so far before the whole one), each with
    its week, its `name` (the files' stem, as `report_file` takes it), whether it is of the week
    so far, when it was last written (UTC) and its formats and sizes."""
    reports: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _FILE.fullmatch(path.name)
            if match and path.is_file():
                stat = path.stat()
                written = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
                name = match.group(1) + (match.group(2) or "")
                entry = reports.setdefault(name, {
                    "week": match.group(1), "name": name, "to_date": bool(match.group(2)),
                    "written_at": written, "files": {}})
                entry["written_at"] = max(entry["written_at"], written)
                entry["files"][match.group(3)] = stat.st_size
    return [reports[n] for n in sorted(reports, reverse=True)]


def report_file(folder: Path, name: str, fmt: str) -> Path:
    """The file of a written report, by week (``2026-W48``) or week so far
    (``2026-W49-to-date``): a 400 for a bad name or format, a 404 when not written. The name
    is rebuilt from the checked week, so nothing outside ``folder`` is reachable."""
    to_date = name.endswith(TO_DATE)
    week = name.removesuffix(TO_DATE)
    parse_week(week)
    if fmt not in FORMATS:
        raise AbvocError(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    path = _path(folder, week, fmt, to_date)
    if not path.is_file():
        now = datetime.now(UTC)
        end = week_bounds(week)[1]
        if to_date:
            raise NotFound(f"week {week} is over: its whole report is {week}.{fmt}" if end <= now
                           else f"no {fmt} report of week {week} so far: run "
                           "`abvoc report --to-date`")
        if end <= now and fmt == "pdf" and _path(folder, week, "html", to_date).is_file():
            raise NotFound(f"no pdf report for week {week}: its HTML was written where no "
                           "Chromium could print it; install one (scripts/install-browser.sh) "
                           f"or set ABVOC_CHROMIUM, then run `abvoc report --week {week}`")
        raise NotFound(_unfinished(week, end, now) if end > now else
                       f"no {fmt} report for week {week}: run `abvoc report --week {week}`")
    return path


__all__ = ["CSP", "FORMATS", "TO_DATE", "Written", "due_week", "list_reports", "report_file",
           "reports_dir", "write_due_report", "write_report", "write_scheduled"]
