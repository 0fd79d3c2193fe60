"""The pages' CSV links: a logged-in admin downloads the same tables as
GET /v1/experiments/{id}/results.csv (for the hours the Experiments page shows) and
/divergence.csv (the Offline-vs-online page's slice rows and findings); others cannot."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from app.auth import create_key
from dashboards import data, feeds
from dashboards.pages import divergence, experiments
from evaluation.online import ALL
from tests.dashboards.test_dashboard_auth import login
from tests.support.dash_tree import find_component


def _table(answer) -> list[list[str]]:  # noqa: ANN001 - a test response
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True))))


def _api(client: FlaskClient, app: Flask, path: str) -> list[list[str]]:
    key = create_key(app.extensions["abvoc"].db, ["admin"])["key"]
    return _table(client.get(path, headers={"Authorization": f"Bearer {key}"}))


def test_the_page_links_the_csv_of_its_hours(dash_app: Flask, seeded: int,
                                             admin_key: str) -> None:
    db = dash_app.extensions["abvoc"].db
    client = dash_app.test_client()
    link = f"/dashboard/experiment-results/{seeded}.csv"
    assert client.get(link).status_code == 302  # to the login
    assert login(client, admin_key).status_code == 303
    whole = find_component(experiments.body(db, seeded, ALL, data.Window()), "exp-csv")
    assert whole.href == link
    rows = _table(client.get(link))
    assert len(rows) > 2 and rows == _api(client, dash_app, f"/v1/experiments/{seeded}/results.csv")
    # The page's window: its hours go with the link, and the table is the window's.
    window = experiments.window_of(db, seeded, [0, 1])
    assert window != data.Window()
    href = find_component(experiments.body(db, seeded, ALL, window), "exp-csv").href
    query = parse_qs(urlsplit(href).query)
    assert set(query) == {"since", "until"}
    windowed = _table(client.get(href))
    assert windowed == _api(client, dash_app, f"/v1/experiments/{seeded}/results.csv?"
                            f"{urlsplit(href).query}")
    assert windowed != rows
    # A reversed window is refused as the API refuses it (it was a 200 with n=0 everywhere).
    reversed_window = "?since=2026-12-07T19:00:00Z&until=2026-12-07T18:00:00Z"
    for bad, said in (("?since=yesterday", "since"), ("?max_slices=3", "unknown query"),
                      (reversed_window, "'until' must be later than 'since'")):
        refused = client.get(link + bad)
        assert refused.status_code == 400 and said in refused.get_json()["error"], bad
    assert client.get("/dashboard/experiment-results/999999.csv").status_code == 404
    # Past the store's 64-bit keys: a 404, not the driver's overflow (a 500 before).
    for huge in (2**63, 10**22):
        assert client.get(f"/dashboard/experiment-results/{huge}.csv").status_code == 404


def test_only_an_admin_session_downloads_it(dash_app: Flask, seeded: int) -> None:
    key = create_key(dash_app.extensions["abvoc"].db, ["annotate"])["key"]  # an annotator
    client = dash_app.test_client()
    assert login(client, key).status_code == 303
    refused = client.get(f"/dashboard/experiment-results/{seeded}.csv")
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]


def test_the_divergence_page_links_its_tables(dash_app: Flask, seeded: int,
                                              admin_key: str) -> None:
    client = dash_app.test_client()
    assert login(client, admin_key).status_code == 303
    page = divergence.body(feeds.divergence(dash_app.extensions["abvoc"].db, seeded))
    for table in ("slices", "findings"):
        link = find_component(page, f"div-csv-{table}").href
        assert link == f"/dashboard/experiment-divergence/{seeded}.csv?table={table}"
        rows = _table(client.get(link))
        assert len(rows) > 1 and rows == _api(
            client, dash_app, f"/v1/experiments/{seeded}/divergence.csv?table={table}")
    assert _table(client.get(f"/dashboard/experiment-divergence/{seeded}.csv")) == _table(
        client.get(f"/dashboard/experiment-divergence/{seeded}.csv?table=slices"))
    for bad, said in (("?table=stages", "'table' must be one of"),
                      ("?alpha=0.1", "unknown query"),
                      ("?table=slices&table=findings", "given more than once")):
        refused = client.get(f"/dashboard/experiment-divergence/{seeded}.csv{bad}")
        assert refused.status_code == 400 and said in refused.get_json()["error"], bad
    for missing in (999999, 2**63):
        assert client.get(f"/dashboard/experiment-divergence/{missing}.csv").status_code == 404
    annotator = dash_app.test_client()
    key = create_key(dash_app.extensions["abvoc"].db, ["annotate"])["key"]
    assert login(annotator, key).status_code == 303
    refused = annotator.get(f"/dashboard/experiment-divergence/{seeded}.csv")
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]
