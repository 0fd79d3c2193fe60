"""The weekly evaluation report of a week seeded through outbox → relay → bus → worker: every
section with its plots, user text escaped, a PDF of several pages that Chromium printed with
the plots in it, written once per week by the command and by `abvoc up`'s schedule, and served
to admins only by week name."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from PIL import Image

from app.cli import main
from app.runner import weekly_report_task
from core.store.models import Experiment, RelabelItem, RelabelLabel
from dashboards.report import (
    due_week,
    list_reports,
    plots,
    reports_dir,
    write_due_report,
    write_report,
)
from evaluation.weekly import (
    current_week,
    last_full_week,
    parse_week,
    previous_week,
    weekly_data,
)
from tests.dashboards.conftest import HOURS, PER_HOUR, SLICES, seed
from tests.evaluation.helpers import T0, correction, flow, prediction
from tests.support.browser import chromium
from tests.support.clock import Span, in_one, wall_clock

WEEK = "2026-W47"  # T0, the seeded traffic, is Friday 2026-11-20
COMMENT = "<script>alert('voc')</script> wrong exponent"
SECTIONS = ("experiments", "offline-online", "voc", "relabeling", "trends")


def _seed_week(app: Flask) -> int:
    """The dashboards' two-arm experiment in WEEK, a week of it before, a commented correction
    and relabel items queued and labeled in WEEK."""
    experiment_id = seed(app)
    services = app.extensions["abvoc"]
    before = T0 - timedelta(days=7)
    batch = []
    for i in range(40):
        for arm, cand in (("control", "cand-a"), ("treatment", "cand-b")):
            pid = f"prev-{arm[0]}{i:03d}"
            batch.append(prediction(pid, arm=arm, candidate=cand, at=before))
            if i < 4:
                batch.append(correction(pid, "z", at=before + timedelta(minutes=1)))
    batch.append(prediction("voc-1", arm="treatment", candidate="cand-b", at=T0))
    event = correction("voc-1", "x^{3}", at=T0 + timedelta(minutes=2))
    event["comment"] = COMMENT
    batch.append(event)
    assert flow(services.db, services.bus, batch, services.settings.topic_prefix) == len(batch)
    with services.db.session() as s:
        for i in range(5):
            item = RelabelItem(queue="default", prediction_id=f"cpr0-{i:03d}", reason="corrected",
                               created_at=T0, status="done" if i < 3 else "open",
                               labeled_at=T0 + timedelta(days=1) if i < 3 else None,
                               annotator="ann" if i < 3 else None, label="y" if i < 3 else None)
            s.add(item)
            s.flush()
            if i < 3:  # an annotator's label: the week counts labeled items by their labels
                s.add(RelabelLabel(item_id=item.id, annotator="ann", action="label", label="y",
                                   created_at=item.labeled_at))
    return experiment_id


def _comment_on(app: Flask, prediction_id: str, comment: str, at: datetime = T0) -> None:
    """A correction with ``comment`` of a new treatment prediction made ``at``."""
    services = app.extensions["abvoc"]
    event = correction(prediction_id, "x^{3}", at=at + timedelta(minutes=3))
    event["comment"] = comment
    batch = [prediction(prediction_id, arm="treatment", candidate="cand-b", at=at), event]
    assert flow(services.db, services.bus, batch, services.settings.topic_prefix) == 2


def _words_past_the_page(pdf: Path) -> tuple[list[str], str]:
    """The words pdftotext finds beyond their page's right edge, and the PDF's text."""
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    past = [word for page in re.finditer(r'<page width="([\d.]+)"(.*?)</page>', boxes, re.S)
            for right, word in re.findall(r'xMax="([\d.]+)"[^>]*>([^<]*)<', page[2])
            if float(right) > float(page[1])]
    return past, "".join(re.findall(r"<word[^>]*>([^<]*)<", boxes))


def _pdf_pages(pdf: Path, out: Path) -> list[Path]:
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(out / "page")], check=True,
                   timeout=60)
    return sorted(out.glob("page*.png"))


def test_week_names_and_the_due_week() -> None:
    assert parse_week("2026-W48").isoformat() == "2026-11-23"
    monday_7am = datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert last_full_week(monday_7am) == "2026-W48"
    assert due_week(monday_7am) == "2026-W48"
    assert due_week(monday_7am - timedelta(hours=2)) == "2026-W47"  # before Monday 06:00
    assert last_full_week(datetime(2027, 1, 4, tzinfo=UTC)) == "2026-W53"
    assert previous_week("1000-W01") == "0999-W52" and parse_week(previous_week("0010-W01"))


def test_report_has_every_section_with_plots_and_escapes_user_text(
        dash_app: Flask, tmp_path: Path) -> None:
    _seed_week(dash_app)
    db = dash_app.extensions["abvoc"].db
    with db.session() as s:
        data = weekly_data(s, WEEK)
    (exp,) = data["experiments"]
    assert exp["figures"]["control"]["predictions"] == HOURS * PER_HOUR * len(SLICES)
    trend = {(t["variant"], t["metric"]): t for t in exp["trends"]}
    assert trend["control", "correction_rate"]["previous"] == pytest.approx(4 / 40)
    online = {(r["candidate"], r["slice"]): r["online"]["n"] for r in exp["divergence_slices"]}
    assert online["cand-a", "all"] == HOURS * PER_HOUR * len(SLICES)  # the week's only
    corrected = sum(round(r * PER_HOUR) * HOURS for rates in SLICES.values() for r in rates)
    assert data["voc"]["total"] == corrected + 1
    assert data["voc"]["examples"][0]["comment"] == COMMENT
    assert data["relabel"]["queued"] == 5 and data["relabel"]["labeled"] == 3
    assert data["relabel"]["open_at_end"] == 2

    done = write_report(db, tmp_path / "reports", WEEK)
    html = done.html.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html
    assert "<script" not in html  # the comment and the experiment's name, escaped
    assert "&lt;script&gt;alert(" in html
    assert "&lt;b&gt;checkout&lt;/b&gt;" in html
    plots = re.findall(r'<img class="plot"[^>]*src="data:image/svg\+xml;base64,', html)
    assert len(plots) == 3 + 2 + 1  # results, divergence, trends; VOC twice; relabeling
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside

    pages = _pdf_pages(done.pdf, tmp_path)
    assert len(pages) >= 2
    _, text = _words_past_the_page(done.pdf)
    # The results plot's title is text in the PDF (Chromium shaped and set it), not outlines.
    assert "correction_ratethisweek(95%Wilsoninterval)" in text.replace(" ", "")
    dark = [float((np.asarray(Image.open(p).convert("L")) < 128).mean()) for p in pages]
    assert all(d > 0.001 for d in dark), dark  # every page has ink


CJK = "指数错了 指数が違います 지수가 틀렸어요"


def _drawn_as_themselves(app: Flask, tmp_path: Path, comment: str, fonts: tuple[str, ...],
                         names: list[str], title: str) -> None:
    """A comment is set in `fonts` in the PDF (not empty boxes) and its words are in the PDF's
    text; a plot of `names` draws with no glyph missing."""
    _seed_week(app)
    _comment_on(app, "voc-script", comment)
    done = write_report(app.extensions["abvoc"].db, tmp_path / "reports", WEEK)
    listed = subprocess.run(["pdffonts", str(done.pdf)], capture_output=True, text=True,
                            check=True).stdout
    assert all(font in listed for font in fonts), listed
    _, text = _words_past_the_page(done.pdf)
    assert all(word in text for word in comment.split())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.bars(names, [1.0, 2.0, 0.5], title)
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []


def test_chinese_japanese_and_korean_are_drawn_as_themselves(
        dash_app: Flask, tmp_path: Path) -> None:
    """A comment in Chinese, Japanese and Korean is set in a CJK font, and a plot's names in
    them draw as themselves."""
    _drawn_as_themselves(dash_app, tmp_path, CJK, ("WenQuanYi",), ["手写/中", "지수", "ひらがな"],
                         "错误率")


THAI_HINDI = "ดัชนีผิด घातांक गलत है"


def test_thai_and_hindi_are_drawn_as_themselves(dash_app: Flask, tmp_path: Path) -> None:
    """Scripts DejaVu has no glyphs for are set in their Noto fonts (fonts-noto-core), and a
    plot's names in them draw as themselves."""
    _drawn_as_themselves(dash_app, tmp_path, THAI_HINDI, ("NotoSansThai", "NotoSansDevanagari"),
                         ["ดัชนี", "घातांक", "ቁጥር"], "ผิด")


def test_long_user_text_wraps_inside_the_page(dash_app: Flask, tmp_path: Path) -> None:
    """A comment of one 1,900-letter word wraps inside its cell: the HTML is no wider than
    its window, and the PDF holds every letter of it on the page."""
    _seed_week(dash_app)
    _comment_on(dash_app, "voc-long", "A" * 1900)
    done = write_report(dash_app.extensions["abvoc"].db, tmp_path / "reports", WEEK)
    with chromium(width=900, height=1200) as driver:
        driver.get(done.html.resolve().as_uri())
        wide, window = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert wide <= window, (wide, window)
        cell = driver.execute_script(  # the "when" column still reads as a date and a time
            "return document.querySelector('#voc td').getBoundingClientRect().width")
        assert cell >= 60, cell
    past, text = _words_past_the_page(done.pdf)
    assert past == []
    assert "A" * 1900 in text  # all of it, on the page


def test_a_long_experiment_name_wraps_inside_the_page(dash_app: Flask, tmp_path: Path) -> None:
    """An experiment name of 100 letters without a blank (the API's longest) ran past the PDF
    page's right edge in its heading: only 82 of its letters were printed."""
    experiment_id = _seed_week(dash_app)
    with dash_app.extensions["abvoc"].db.session() as s:
        s.get(Experiment, experiment_id).name = "N" * 100
    done = write_report(dash_app.extensions["abvoc"].db, tmp_path / "reports", WEEK)
    past, text = _words_past_the_page(done.pdf)
    assert past == []
    assert text.count("N" * 100) >= 2  # the heading of each section that names it, whole


def test_plots_take_an_interval_that_ends_a_rounding_error_inside_its_bar() -> None:
    # An arm with no corrections: rate 0, its Wilson interval's lower end a rounding error
    # above 0 (the report died on the negative whisker this made before).
    assert plots.bars(["control", "treat"], [0.0, 1.0], "correction rate",
                      low=[6.9e-18, 0.9], high=[0.0575, 1.0 - 1e-16]).startswith("data:")


def test_an_empty_week_shows_zeros(dash_app: Flask, tmp_path: Path) -> None:
    """Each section says in a sentence that it has nothing, on one page: the PDF was five
    pages of empty charts saying "no data this week"."""
    db = dash_app.extensions["abvoc"].db
    done = write_report(db, tmp_path, "2026-W10")
    html = done.html.read_text()
    assert "0 corrections this week" in html and "0 queued, 0 labeled" in html
    assert "(s)" not in html and "0 experiments with traffic" in html
    assert "No experiment had traffic" in html and "<img" not in html
    assert len(_pdf_pages(done.pdf, tmp_path)) == 1


def test_bad_weeks_are_refused_with_the_form(dash_app: Flask, tmp_path: Path) -> None:
    from core.errors import AbvocError

    db = dash_app.extensions["abvoc"].db
    for bad in ("2026-48", "2026-W54", "../x", "2026-W4"):
        with pytest.raises(AbvocError, match="2026-W48|no week"):
            write_report(db, tmp_path / "reports", bad)
    assert not (tmp_path / "reports").exists()


def test_schedule_writes_the_due_week_once(dash_app: Flask, tmp_path: Path) -> None:
    _seed_week(dash_app)
    db = dash_app.extensions["abvoc"].db
    folder = tmp_path / "reports"
    monday = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    first = write_due_report(db, folder, monday)
    assert (first.week, first.skipped) == (WEEK, False)
    stamp = first.pdf.stat().st_mtime_ns
    again = write_due_report(db, folder, monday + timedelta(hours=1))
    assert again.skipped and first.pdf.stat().st_mtime_ns == stamp
    assert [r["week"] for r in list_reports(folder)] == [WEEK]
    assert write_report(db, folder, WEEK, force=True).skipped is False
    # `abvoc up`'s task writes the current due week into <data_dir>/reports, and the current
    # week so far (ABVOC_REPORT_TO_DATE_HOURS, 24 by default): each once in two runs
    data_dir = tmp_path / "data"
    settings = dash_app.extensions["abvoc"].settings.with_overrides(data_dir=data_dir)
    runs = []
    for _ in range(2):
        with wall_clock() as span:
            weekly_report_task(db, settings)()
        runs.append(span)
    listed = [(r["week"], r["to_date"]) for r in list_reports(reports_dir(data_dir))]
    assert listed in _scheduled(runs), runs


def _scheduled(runs: list[Span]) -> list[list[tuple[str, bool]]]:
    """The listings the runs may leave, each by its own clock (its span's start or end): the due
    week, whole (replacing its week so far), and the current week so far. One listing unless a
    run crossed Monday 00:00 (a new current week) or 06:00 (a new due week)."""
    listings = []
    for moments in itertools.product(*[(run.before, run.after) for run in runs]):
        listed: set[tuple[str, bool]] = set()
        for now in moments:
            listed -= {(due_week(now), True)}
            listed |= {(due_week(now), False), (current_week(now), True)}
        listings.append(sorted(listed, reverse=True))  # as list_reports: newest week first
    return listings


def test_cli_writes_once_and_refuses_a_bad_week(dash_app: Flask, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_week(dash_app)
    settings = dash_app.extensions["abvoc"].settings
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    made = runner.invoke(main, ["report", "--week", WEEK, "--json"])
    assert made.exit_code == 0, made.output
    out = json.loads(made.stdout)
    assert "weekly report: experiments" in made.stderr  # its progress, off the JSON
    assert not out["skipped"] and Path(out["pdf"]).parent == tmp_path / "data" / "reports"
    again = json.loads(runner.invoke(main, ["report", "--week", WEEK, "--json"]).output)
    assert again["skipped"]
    bad = runner.invoke(main, ["report", "--week", "48"])
    assert bad.exit_code == 2 and "2026-W48" in bad.output


def test_api_lists_and_serves_reports_to_admins_only(dash_app: Flask, admin_key: str) -> None:
    from app.auth import create_key

    folder = reports_dir(dash_app.extensions["abvoc"].settings.data_dir)
    write_report(dash_app.extensions["abvoc"].db, folder, WEEK)
    (folder.parent / "secret.html").write_text("secret")
    client = dash_app.test_client()
    admin = {"X-API-Key": admin_key}
    listed = client.get("/v1/reports", headers=admin)
    assert listed.status_code == 200
    assert listed.get_json()["reports"][0]["week"] == WEEK
    assert set(listed.get_json()["reports"][0]["files"]) == {"html", "pdf"}
    with client.get(f"/v1/reports/{WEEK}.html", headers=admin) as page:
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert b"weekly evaluation report" in page.data
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    with client.get(f"/v1/reports/{WEEK}.pdf", headers=admin) as pdf:
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
        assert pdf.headers["Content-Disposition"].startswith("attachment")
    missing = client.get("/v1/reports/2026-W01.pdf", headers=admin)
    assert missing.status_code == 404 and "abvoc report" in missing.get_json()["error"]
    # Not over: only its days so far are (asked again if answered across Monday 00:00).
    this_week, unfinished = in_one(current_week, lambda before: (
        week := before.strftime("%G-W%V"), client.get(f"/v1/reports/{week}.pdf", headers=admin)))
    assert unfinished.status_code == 404
    assert "a report covers a finished week" in unfinished.get_json()["error"]
    assert "`abvoc report --to-date`" in unfinished.get_json()["error"]
    assert client.get("/v1/reports/2026-48.html", headers=admin).status_code == 400
    for sneaky in ("/v1/reports/..%2Fsecret.html", "/v1/reports/..%2F..%2Freports%2F2026-W47.html",
                   "/v1/reports/../secret.html", "/v1/reports/%2E%2E.html"):
        with client.get(sneaky, headers=admin) as answer:
            assert answer.status_code in (400, 404), sneaky
            assert b"secret" not in answer.data, sneaky
    user = create_key(dash_app.extensions["abvoc"].db, ["predict"], name="u")["key"]
    assert client.get("/v1/reports", headers={"X-API-Key": user}).status_code == 403
    assert client.get(f"/v1/reports/{WEEK}.pdf").status_code == 401


def test_dashboard_lists_reports_and_serves_them_to_a_logged_in_admin(
        dash_app: Flask, admin_key: str) -> None:
    from tests.dashboards.test_dashboard_auth import ORIGIN, ROUTE, _token, login

    client = dash_app.test_client()
    assert client.get(f"/dashboard/report-files/{WEEK}.html").status_code == 302  # to login
    login(client, admin_key)
    route = {**ROUTE, "inputs": [{**ROUTE["inputs"][0], "value": "/dashboard/reports"}]}
    headers = {**ORIGIN, "X-CSRFToken": _token(client)}
    empty = client.post("/dashboard/_dash-update-component", json=route, headers=headers)
    assert empty.status_code == 200 and "reports-empty" in empty.get_data(as_text=True)
    write_report(dash_app.extensions["abvoc"].db,
                 reports_dir(dash_app.extensions["abvoc"].settings.data_dir), WEEK)
    listed = client.post("/dashboard/_dash-update-component", json=route, headers=headers)
    text = json.dumps(listed.get_json())  # Dash escapes "/" as \\u002f; json.dumps does not
    assert "reports-list" in text and f"/dashboard/report-files/{WEEK}.pdf" in text
    with client.get(f"/dashboard/report-files/{WEEK}.pdf") as pdf:
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    with client.get(f"/dashboard/report-files/{WEEK}.html") as page:
        assert page.status_code == 200 and b"weekly evaluation report" in page.data
        assert "script" not in page.headers["Content-Security-Policy"]
    assert client.get("/dashboard/report-files/2026-W02.html").status_code == 404
    folder = reports_dir(dash_app.extensions["abvoc"].settings.data_dir)
    (folder.parent / "secret.html").write_text("top-secret")
    assert client.get("/dashboard/report-files/secret.html").status_code == 400
    for sneaky in ("..%2Fsecret.html", "../secret.html", "%2E%2E%2Fsecret.html"):
        with client.get(f"/dashboard/report-files/{sneaky}") as answer:
            assert b"top-secret" not in answer.data, sneaky
