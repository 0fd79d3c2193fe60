"""The weekly evaluation report: files in ``<data_dir>/reports/`` named by ISO week
(``2026-W48.html``, ``2026-W48.pdf``), written by ``abvoc report`` and by the schedule in
``abvoc up``; the API and the dashboard list and serve them.

A week is written once: the PDF is written last, so its presence means the week is done, and a
second run skips it unless forced. Files are written under a temporary name and renamed, so a
reader never sees half a report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.errors import AbvocError, NotFound
from core.store.db import Database
from dashboards.report.render import html_to_pdf, render_html
from evaluation.weekly import WEEK_PATTERN, last_full_week, parse_week, week_bounds, weekly_data

log = logging.getLogger("abvoc.report")
FORMATS = ("html", "pdf")
_FILE = re.compile(rf"^({WEEK_PATTERN})\.(html|pdf)$")
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


def _unfinished(week: str, end: datetime, now: datetime) -> str:
    return (f"week {week} ends on {end:%Y-%m-%d %H:%M} UTC; a report covers a finished week "
            f"(the last one is {last_full_week(now)})")


def reports_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "reports"


def write_report(db: Database, folder: Path, week: str | None = None, *, force: bool = False,
                 now: datetime | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Written:
    """Write the HTML and PDF of ``week`` (default: the last full week) unless already there;
    `progress` is told the experiments gathered so far (see :func:`weekly_data`)."""
    now = now or datetime.now(UTC)
    week = week or last_full_week(now)
    end = week_bounds(week)[1]
    if end > now:
        raise AbvocError(_unfinished(week, end, now))
    folder.mkdir(parents=True, exist_ok=True)
    html, pdf = folder / f"{week}.html", folder / f"{week}.pdf"
    if pdf.exists() and html.exists() and not force:
        return Written(week, html, pdf, skipped=True)
    with db.session() as s:
        data = weekly_data(s, week, now=now, progress=progress)
    tmp = html.with_suffix(".html.part")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(html)
    html_to_pdf(html, pdf)
    log.info("weekly report %s written to %s", week, folder)
    return Written(week, html, pdf, skipped=False)


def due_week(now: datetime) -> str:
    """The week whose report is due at ``now``: the last full week once its Monday 06:00 has
    passed, else the one before it."""
    return last_full_week(now.astimezone(UTC) - DUE_AFTER)


def write_due_report(db: Database, folder: Path, now: datetime | None = None) -> Written:
    """What the schedule runs (hourly): the due week's report, once."""
    return write_report(db, folder, due_week(now or datetime.now(UTC)), now=now)


def list_reports(folder: Path) -> list[dict[str, object]]:
    """The written weeks, newest first, with their formats and sizes."""
    weeks: dict[str, dict[str, object]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _FILE.fullmatch(path.name)
            if match and path.is_file():
                entry = weeks.setdefault(match.group(1), {"week": match.group(1), "files": {}})
                entry["files"][match.group(2)] = path.stat().st_size  # type: ignore[index]
    return [weeks[w] for w in sorted(weeks, reverse=True)]


def report_file(folder: Path, week: str, fmt: str) -> Path:
    """The file of a written week: a 400 for a bad week or format, a 404 when not written.
    The name is rebuilt from the checked week, so nothing outside ``folder`` is reachable."""
    parse_week(week)
    if fmt not in FORMATS:
        raise AbvocError(f"format {fmt!r} must be one of {', '.join(FORMATS)}")
    path = folder / f"{week}.{fmt}"
    if not path.is_file():
        now = datetime.now(UTC)
        end = week_bounds(week)[1]
        raise NotFound(_unfinished(week, end, now) if end > now else
                       f"no {fmt} report for week {week}: run `abvoc report --week {week}`")
    return path


__all__ = ["CSP", "FORMATS", "Written", "due_week", "list_reports", "report_file", "reports_dir",
           "write_due_report", "write_report"]
