"""How the printed weekly report uses its pages: what belongs together stays on one page (a
table's header with its rows, repeated on each page a table runs onto; a heading with what it
heads), and a section or chart with nothing to show is a sentence, not a page of empty axes.
Checked on the PDF Chromium prints, page by page, with poppler's ``pdftotext -layout``."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

from flask import Flask

from dashboards.report.render import html_to_pdf, render_html
from evaluation.weekly import weekly_data
from tests.dashboards.conftest import NAME
from tests.dashboards.test_weekly_report import WEEK, _seed_week

HEADERS = ("variant predictions", "treatment metric", "treatmen metric", "variant metric",
           "when candidate / slice")
"""How each of the report's table headers begins as a line of text (a narrow column may
break "treatment")."""
ROWS = ("control ", "treatment ")
"""How the rows of the experiments' tables begin: the variants."""


def printed_pages(data: dict[str, Any], folder: Path) -> list[list[str]]:
    """The report's PDF as pages of non-blank lines, runs of blanks made one."""
    html, pdf = folder / "report.html", folder / "report.pdf"
    html.write_text(render_html(data), encoding="utf-8")
    html_to_pdf(html, pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    return [[" ".join(line.split()) for line in page.splitlines() if line.strip()]
            for page in text.split("\f") if page.strip()]


def test_headers_and_headings_never_stay_behind_at_a_page_foot(
        dash_app: Flask, tmp_path: Path) -> None:
    """Sixteen experiments, each a few reasons longer than the last, so their tables and
    headings land at every height of a page: a table header or a heading was left alone at a
    page's foot with its rows on the next page, and a table went on there without its header."""
    _seed_week(dash_app)
    with dash_app.extensions["abvoc"].db.session() as s:
        data = weekly_data(s, WEEK)
    (one,) = data["experiments"]
    data["experiments"] = []
    for i in range(16):
        e = copy.deepcopy(one)
        e["id"] = 100 + i
        e["decision"]["reasons"] = [f"reason {j}" for j in range(i % 7)]
        data["experiments"].append(e)
    pages = printed_pages(data, tmp_path)
    assert len(pages) > 16
    feet = [page[-1] for page in pages]
    assert [f for f in feet if f.startswith(HEADERS) or NAME in f] == []
    tops = [page[0] for page in pages]
    assert [t for t in tops if t.startswith(ROWS) and not t.startswith(HEADERS)] == []



def test_a_week_without_traffic_says_so_instead_of_drawing_empty_charts(
        dash_app: Flask, tmp_path: Path) -> None:
    """The week after the seeded one: the experiment ran, served nobody. Its primary chart,
    its offline-vs-online chart and the VOC and relabeling charts were empty axes saying "no
    data this week" or "no online traffic", each section a page; only last week's figures,
    the week-over-week chart, have something to draw."""
    _seed_week(dash_app)
    with dash_app.extensions["abvoc"].db.session() as s:
        data = weekly_data(s, "2026-W48")
    html = render_html(data)
    assert html.count("<img") == 1 and 'alt="this week against last week"' in html
    assert "No bar for control, treatment: no predictions this week." in html
    assert "Nothing to compare: no online traffic this week" in html
    assert "No divergence found" not in html and "<th>predictions</th>" not in html
    pages = printed_pages(data, tmp_path)
    assert len(pages) == 2, pages  # sections 1 to 4, then the chart of section 5
    assert pages[1][0] == "5. Week over week"


def test_numbers_and_headings_are_never_cut_inside_a_word(
        dash_app: Flask, tmp_path: Path) -> None:
    """A long verdict squeezes the comparisons' table to the page: its narrow columns broke
    inside a word ("differenc" / "e") and inside a number (a p of 0.000182 with its 9 on the
    next line, which reads as another number). Headings break between words only, numbers and
    intervals' ends never."""
    _seed_week(dash_app)
    with dash_app.extensions["abvoc"].db.session() as s:
        data = weekly_data(s, WEEK)
    (e,) = data["experiments"]
    for c in e["comparisons"]:
        c["p_holm"], c["difference"] = 0.0001829, -0.01234567
        c["ci_low"], c["ci_high"] = -0.0234567, 0.0012345
    e["decision"]["reasons"] = ["a long reason " * 30]
    lines = [line for page in printed_pages(data, tmp_path) for line in page]
    words = " ".join(lines).split()
    assert "UTC, end excluded); compared with" in " ".join(lines)
    for whole in ("difference", "0.0001829", "-0.01235", "-0.02346", "0.001234",
                  "predictions", "candidate"):
        assert whole in words, (whole, lines)
