"""The report of the current week so far (`abvoc report --to-date`): up to the end of the hour,
marked as such, written again at each run, listed and served beside the whole weeks, and
replaced by the whole week's report once that is written."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.errors import AbvocError
from dashboards.report import list_reports, reports_dir, write_report, write_scheduled
from dashboards.report.render import render_html
from evaluation.weekly import current_week, so_far, week_bounds, weekly_data
from tests.dashboards.conftest import PER_HOUR, SLICES
from tests.dashboards.test_weekly_report import WEEK, _seed_week
from tests.evaluation.helpers import T0
from tests.support.clock import wall_clock

NOW = T0 + timedelta(hours=1)  # Friday 11:15: the seed's hours 10:00 and 11:00 are in, 12:00 not
SO_FAR = f"{WEEK}-to-date"


def _listed(folder: Path) -> list[tuple[str, bool]]:
    return [(str(r["name"]), bool(r["to_date"])) for r in list_reports(folder)]


def test_the_week_so_far_ends_with_this_hour(dash_app: Flask) -> None:
    _seed_week(dash_app)
    with dash_app.extensions["abvoc"].db.session() as s:
        data = weekly_data(s, WEEK, now=NOW, until=so_far(WEEK, NOW))
        whole = weekly_data(s, WEEK)
    assert data["to_date"] and not whole["to_date"]
    assert data["until"] == "2026-11-20T12:00:00+00:00"
    (exp,) = data["experiments"]
    assert exp["figures"]["control"]["predictions"] == 2 * PER_HOUR * len(SLICES)
    assert whole["experiments"][0]["figures"]["control"]["predictions"] == \
        3 * PER_HOUR * len(SLICES)
    # Monday to Friday; the items labeled on Saturday are still open
    assert [d["day"] for d in data["relabel"]["days"]] == [
        f"2026-11-{day}" for day in range(16, 21)]
    assert (data["relabel"]["labeled"], data["relabel"]["open_at_end"]) == (0, 5)
    assert so_far(WEEK, T0.replace(minute=0)) == T0.replace(minute=0)  # on the hour: up to it


def test_the_week_s_last_hour_is_still_the_week_so_far(dash_app: Flask) -> None:
    """Sunday 23:00-24:00 UTC the week so far ends where the week does; its report said it was
    the whole week's (no "so far" in it, "at the week's end"), found by a CI run at 23:31."""
    _seed_week(dash_app)
    end = week_bounds(WEEK)[1]
    for now in (end - timedelta(minutes=30), end - timedelta(microseconds=1)):
        assert so_far(WEEK, now) == end
        with dash_app.extensions["abvoc"].db.session() as s:
            data = weekly_data(s, WEEK, now=now, until=so_far(WEEK, now))
        page = render_html(data)
        assert data["to_date"] and f"{WEEK} so far</title>" in page and 'id="to-date"' in page


def test_only_the_current_week_has_a_report_so_far() -> None:
    with pytest.raises(AbvocError, match=f"week {WEEK} is over: .*abvoc report --week {WEEK}"):
        so_far(WEEK, datetime(2026, 11, 23, tzinfo=UTC))
    with pytest.raises(AbvocError, match="begins on 2026-11-23 UTC: .* current one, 2026-W47"):
        so_far("2026-W48", NOW)
    assert current_week(NOW) == WEEK


def test_written_again_listed_served_and_replaced_by_the_whole_week(
        dash_app: Flask, admin_key: str) -> None:
    _seed_week(dash_app)
    db = dash_app.extensions["abvoc"].db
    folder = reports_dir(dash_app.extensions["abvoc"].settings.data_dir)
    done = write_report(db, folder, now=NOW, to_date=True)
    assert (done.week, done.to_date, done.html.name, done.pdf.name) == (
        WEEK, True, f"{SO_FAR}.html", f"{SO_FAR}.pdf")
    html = done.html.read_text()
    assert 'id="to-date"' in html and "Week 2026-W47 so far" in html
    assert "2026-11-16 to 2026-11-20 12:00, UTC" in html and "still unlabeled\nnow" in html
    later = write_report(db, folder, WEEK, now=NOW + timedelta(hours=2), to_date=True)
    assert not later.skipped and "2026-11-20 14:00, UTC" in later.html.read_text()
    assert _listed(folder) == [(SO_FAR, True)]

    client = dash_app.test_client()
    admin = {"X-API-Key": admin_key}
    (entry,) = client.get("/v1/reports", headers=admin).get_json()["reports"]
    assert (entry["week"], entry["name"], entry["to_date"]) == (WEEK, SO_FAR, True)
    assert set(entry["files"]) == {"html", "pdf"} and entry["written_at"].endswith("+00:00")
    with client.get(f"/v1/reports/{SO_FAR}.html", headers=admin) as page:
        assert page.status_code == 200 and b"so far" in page.data

    write_report(db, folder, WEEK, now=NOW + timedelta(days=3))  # Monday: the whole week
    assert _listed(folder) == [(WEEK, False)]
    gone = client.get(f"/v1/reports/{SO_FAR}.pdf", headers=admin)
    assert gone.status_code == 404
    assert gone.get_json()["error"] == f"week {WEEK} is over: its whole report is {WEEK}.pdf"
    assert client.get("/v1/reports/2026-W47-to-dat.pdf", headers=admin).status_code == 400
    long = client.get(f"/v1/reports/{'9' * 5000}-to-date.pdf", headers=admin)
    assert long.status_code == 400 and len(long.data) < 600  # the name cut, its size said
    assert "(5000 characters)" in long.get_json()["error"]


def test_the_command_writes_the_current_week_so_far(dash_app: Flask, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dash_app.extensions["abvoc"].settings
    monkeypatch.setenv("ABVOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ABVOC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    with wall_clock() as span:  # the command reads the clock: the week of a moment in the span
        made = runner.invoke(main, ["report", "--to-date", "--json"])
    assert made.exit_code == 0, made.output
    out = json.loads(made.stdout)
    week = out["week"]
    assert week in span.of(current_week) and (out["to_date"], out["skipped"]) == (True, False)
    assert Path(out["pdf"]) == tmp_path / "data" / "reports" / f"{week}-to-date.pdf"
    with wall_clock() as span:
        again = runner.invoke(main, ["report", "--to-date"])
    assert again.exit_code == 0, again.output
    assert re.search(r"report (\S+) so far written", again.output)[1] in span.of(current_week)
    over = runner.invoke(main, ["report", "--to-date", "--week", WEEK])
    assert over.exit_code != 0 and f"week {WEEK} is over" in over.output


def _age(path: Path, now: datetime, hours: float) -> None:
    """Date the file's last write `hours` before `now`, as the schedule reads it."""
    stamp = (now - timedelta(hours=hours)).timestamp()
    os.utime(path, (stamp, stamp))


def test_the_schedule_rewrites_the_week_so_far_once_it_is_old(dash_app: Flask,
                                                               tmp_path: Path) -> None:
    _seed_week(dash_app)
    db = dash_app.extensions["abvoc"].db
    folder, day = tmp_path / "reports", timedelta(hours=24)
    first = write_scheduled(db, folder, day, NOW)  # nothing yet: the due week and so far
    assert [(w.week, w.to_date) for w in first] == [("2026-W46", False), (WEEK, True)]
    html, pdf = folder / f"{SO_FAR}.html", folder / f"{SO_FAR}.pdf"
    _age(html, NOW, 23)
    assert write_scheduled(db, folder, day, NOW) == []  # the due week once; so far is fresh
    assert html.stat().st_mtime == (NOW - timedelta(hours=23)).timestamp()
    _age(html, NOW, 24)
    _age(pdf, NOW, 24)
    (again,) = write_scheduled(db, folder, day, NOW)
    assert (again.week, again.to_date, again.skipped) == (WEEK, True, False)
    assert min(html.stat().st_mtime, pdf.stat().st_mtime) > NOW.timestamp()  # written now
    assert "2026-11-20 12:00" in html.read_text(encoding="utf-8")
    # 0 (ABVOC_REPORT_TO_DATE_HOURS=0): only on demand, however old
    _age(html, NOW, 100)
    assert write_scheduled(db, folder, None, NOW) == []
    assert _listed(folder) == [(SO_FAR, True), ("2026-W46", False)]


def test_a_report_chromium_cannot_print_does_not_stop_the_other(
        dash_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    _seed_week(dash_app)
    db = dash_app.extensions["abvoc"].db
    folder, day = tmp_path / "reports", timedelta(hours=24)
    monkeypatch.setenv("ABVOC_CHROMIUM", str(tmp_path / "no-such-browser"))
    with caplog.at_level("ERROR", logger="abvoc.report"), \
            pytest.raises(AbvocError, match="no Chromium to print"):
        write_scheduled(db, folder, day, NOW)
    assert "the week so far's report failed too: no Chromium to print" in caplog.text
    # both HTML files are there (the due week's did not stop the week so far), no PDF
    assert sorted(p.name for p in folder.iterdir()) == ["2026-W46.html", f"{SO_FAR}.html"]
    monkeypatch.delenv("ABVOC_CHROMIUM")
    done = write_scheduled(db, folder, day, NOW)  # the next hour: both PDFs printed
    assert [(w.week, w.to_date) for w in done] == [("2026-W46", False), (WEEK, True)]
    assert _listed(folder) == [(SO_FAR, True), ("2026-W46", False)]


@pytest.mark.parametrize("value", ["-1", "169", "nan", "daily"])
def test_the_schedule_setting_is_checked(value: str) -> None:
    from core.settings import ConfigError, load_settings

    assert load_settings(env={}).report_to_date_hours == 24
    assert load_settings(env={"ABVOC_REPORT_TO_DATE_HOURS": "0"}).report_to_date_hours == 0
    with pytest.raises(ConfigError, match=r"ABVOC_REPORT_TO_DATE_HOURS \(report_to_date_hours "
                                          r"in the config file\) must be a number of hours "
                                          "from 0 to 168"):
        load_settings(env={"ABVOC_REPORT_TO_DATE_HOURS": value})


def _press_write(client: Any) -> Any:
    """The Reports page's button, as the renderer sends its callback."""
    from tests.dashboards.test_dashboard_auth import ORIGIN, _token

    outputs = [("reports-body", "children"), ("reports-message", "children")]
    body = {"output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": "reports-to-date", "property": "n_clicks", "value": 1}],
            "state": [], "changedPropIds": ["reports-to-date.n_clicks"]}
    return client.post("/dashboard/_dash-update-component", json=body,
                       headers={**ORIGIN, "X-CSRFToken": _token(client)})


def test_the_reports_page_writes_and_lists_the_week_so_far(dash_app: Flask,
                                                         admin_key: str) -> None:
    from app.auth import create_key
    from tests.dashboards.test_dashboard_auth import login

    client = dash_app.test_client()
    login(client, create_key(dash_app.extensions["abvoc"].db, ["annotate"], name="a")["key"],
          next_="/dashboard/")
    assert _press_write(client).status_code == 403  # admins only
    folder = reports_dir(dash_app.extensions["abvoc"].settings.data_dir)
    assert list_reports(folder) == []
    client = dash_app.test_client()
    login(client, admin_key)
    with wall_clock() as span:  # the page writes the week its clock reads: one in the span
        pressed = _press_write(client)
    assert pressed.status_code == 200
    text = json.dumps(pressed.get_json())  # the list, redrawn with it, and the message
    week = re.search(r"Week (\S+) so far written\.", text)[1]
    assert week in span.of(current_week) and "reports-list" in text
    assert f"{week} so far (written " in text and " UTC)" in text
    assert f"/dashboard/report-files/{week}-to-date.pdf" in text
    assert _listed(folder) == [(f"{week}-to-date", True)]
    with client.get(f"/dashboard/report-files/{week}-to-date.html") as page:
        assert page.status_code == 200 and b"so far" in page.data
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{week}-to-date.html", f"{week}-to-date.pdf"]  # no temporary file left behind


def test_the_button_in_a_real_browser(dash_app: Flask, admin_key: str) -> None:
    """Chromium: the Reports page's button writes the week so far and the list shows it, with
    no console error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.dashboards.test_dashboard_browser import WAIT_S, _log_in, _text, _wait
    from tests.support.browser import chromium, console_errors
    from tests.support.live import serve

    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/reports")
        _wait(driver, "#login-form")
        _log_in(driver, admin_key)
        assert "No weekly report yet" in _wait(driver, "#reports-empty").text
        with wall_clock() as span:  # the week the service's clock read is one in the span
            driver.find_element(By.ID, "reports-to-date").click()
            WebDriverWait(driver, WAIT_S).until(
                ec.text_to_be_present_in_element((By.ID, "reports-message"), "so far written"))
        week = re.search(r"Week (\S+) so far written", _text(driver, "#reports-message"))[1]
        assert week in span.of(current_week)
        assert f"{week} so far (written " in _text(driver, "#reports-list")
        link = driver.find_element(By.CSS_SELECTOR, "#reports-list a")
        assert link.get_attribute("href").endswith(f"/dashboard/report-files/{week}-to-date.html")
        assert console_errors(driver) == []
