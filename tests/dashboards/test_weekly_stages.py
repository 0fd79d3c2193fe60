"""The weekly report's wrong answers by the stage blamed: the week's corrected answers of
candidates that record their stages, drawn in its offline-vs-online section."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

from flask import Flask

from dashboards.report import write_report
from evaluation.weekly import weekly_data
from tests.dashboards.pages_seed import STAGES
from tests.dashboards.test_weekly_report import WEEK, _seed_week
from tests.evaluation.helpers import T0, correction, flow, prediction


def test_the_week_s_wrong_answers_by_stage(dash_app: Flask, tmp_path: Path) -> None:
    """The week's corrected answers of candidates that record their stages, by the stage
    blamed (the week before left out), drawn in the offline-vs-online section; a stage's name
    is drawn as text, escaped."""
    _seed_week(dash_app)
    services = dash_app.extensions["abvoc"]
    hostile = "<script>alert('stage')</script>"
    answers = {"answers": [{"stage": hostile, "answer": "x^{2}"},
                           {"stage": "post", "answer": "x^{3}"}]}
    batch = []
    for pid, at, stages in (("ocr-week", T0, STAGES), ("ocr-before", T0 - timedelta(days=7),
                                                         STAGES),
                            ("bundle-week", T0, answers)):
        batch.append(prediction(pid, candidate="cand-a", output="x^{3}", at=at, stages=stages))
        batch.append(correction(pid, "x^{2}", at=at + timedelta(minutes=1)))
    assert flow(services.db, services.bus, batch, services.settings.topic_prefix) == len(batch)
    with services.db.session() as s:
        (exp,) = weekly_data(s, WEEK)["experiments"]
    (row,) = exp["stages"]
    assert row["candidate"] == "cand-a" and row["errors"] == 2  # this week's two, not before
    assert row["counts"]["recognizer"] == 1 and row["counts"]["post"] == 1
    html = write_report(services.db, tmp_path / "reports", WEEK).html.read_text()
    assert 'alt="wrong answers by the stage blamed"' in html
    assert "<script" not in html
    svg = base64.b64decode(html.split('alt="wrong answers by the stage blamed" src="data:image/'
                                      'svg+xml;base64,')[1].split('"')[0]).decode()
    assert "recognizer" in svg and "&lt;script&gt;" in svg and "<script" not in svg
