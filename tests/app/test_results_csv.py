"""GET /v1/experiments/{id}/results.csv: the JSON report's comparisons as a table, the same
figures to the last digit, a formula-looking text cell defused, the same query and refusals."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app import close_app, create_app
from app.auth import create_key
from app.cli import main
from core.settings import Settings
from evaluation.results import COMPARISON_COLUMNS
from evaluation.results_csv import cell, comparisons_csv, table
from tests.evaluation.helpers import add_experiment, apply, prediction
from tests.evaluation.test_label_metrics import add_label_candidate, load_label_experiment


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    flask_app = create_app(settings, test_config={"TESTING": True})
    yield flask_app
    close_app(flask_app)


def _key(app: Flask, scope: str) -> dict[str, str]:
    key = create_key(app.extensions["abvoc"].db, [scope])["key"]
    return {"Authorization": f"Bearer {key}"}


def _rows(client: FlaskClient, admin: dict[str, str], path: str) -> list[dict[str, str]]:
    answer = client.get(path, headers=admin)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def _read(text: str, like: Any) -> Any:
    """A CSV cell back as the JSON value it was written from."""
    if like is None:
        assert text == ""
        return None
    if isinstance(like, bool):
        return {"true": True, "false": False}[text]
    if isinstance(like, int | float):
        return type(like)(text)
    return text


def report_and_table(app: Flask, report: str, table: str
                     ) -> tuple[int, dict[str, Any], list[dict[str, str]]]:
    """The label experiment's id, its JSON `report` and its CSV `table`, as an admin gets them."""
    exp = load_label_experiment(app.extensions["abvoc"].db)
    client, admin = app.test_client(), _key(app, "admin")
    return (exp, client.get(f"/v1/experiments/{exp}/{report}", headers=admin).get_json(),
            _rows(client, admin, f"/v1/experiments/{exp}/{table}"))


def test_each_comparison_is_a_row_with_the_json_figures(app: Flask) -> None:
    exp, report, rows = report_and_table(app, "results", "results.csv")
    client, admin = app.test_client(), _key(app, "admin")
    comparisons = report["comparisons"]
    assert len(comparisons) >= 2 and len(rows) == len(comparisons)
    assert list(rows[0])[:4] == ["experiment_id", "experiment", "control", "sequential_alpha"]
    for row, record in zip(rows, comparisons, strict=True):
        assert (row["experiment_id"], row["experiment"]) == (str(exp), report["experiment"]["name"])
        # Every field a comparison has is a column, of the fixed ones (the others empty here).
        assert set(record) <= set(row) - {"experiment_id", "experiment"} \
            == set(COMPARISON_COLUMNS)
        assert all(row[k] == "" for k in set(COMPARISON_COLUMNS) - set(record))
        # Every figure reads back exactly: floats are written in their shortest exact form.
        assert {k: _read(row[k], v) for k, v in record.items()} == record
    answer = client.get(f"/v1/experiments/{exp}/results.csv", headers=admin)
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="experiment-{exp}-results.csv"'


def test_a_draft_experiments_table_has_every_column(app: Flask) -> None:
    # The columns are fixed, in a fixed order: with no comparison the file was its two
    # leading columns, and which ones followed depended on the rows.
    client, admin = app.test_client(), _key(app, "admin")
    for name in ("cand-a", "cand-b"):
        add_label_candidate(app.extensions["abvoc"].db, name)
    draft = client.post("/v1/experiments", headers=admin, json={
        "name": "draft only", "scope": "draftscope", "arms": [
            {"name": "control", "candidate": "cand-a", "weight": 1, "control": True},
            {"name": "b", "candidate": "cand-b", "weight": 1}]})
    assert draft.status_code == 201, draft.get_json()
    answer = client.get(f"/v1/experiments/{draft.get_json()['id']}/results.csv", headers=admin)
    header = answer.get_data(as_text=True).splitlines()[0]
    assert header == ",".join(("experiment_id", "experiment", *COMPARISON_COLUMNS))
    empty = comparisons_csv({"experiment": {"id": 1, "name": "x"}, "comparisons": []})
    assert empty.splitlines() == [header]


def test_the_query_is_the_json_reports(app: Flask) -> None:
    exp = load_label_experiment(app.extensions["abvoc"].db)
    client, admin = app.test_client(), _key(app, "admin")
    every = _rows(client, admin, f"/v1/experiments/{exp}/results.csv")
    assert {r["slice"] for r in every} > {"all"}
    only_all = _rows(client, admin, f"/v1/experiments/{exp}/results.csv?max_slices=0")
    assert {r["slice"] for r in only_all} == {"all"}
    refused(app, exp, "results.csv", (
        ("?format=json", 400, "unknown query parameter"), ("?since=yesterday", 400, "since")))


def refused(app: Flask, exp: int, table: str, cases: tuple[tuple[str, int, str], ...]) -> None:
    """Each query of `cases` on the experiment's `table` is refused with its status and words
    (a 404's on an experiment that does not exist), and a key without admin gets a 403."""
    client, admin = app.test_client(), _key(app, "admin")
    path = f"/v1/experiments/{exp}/{table}"
    for query, status, said in (*cases, ("", 404, "does not exist")):
        asked = f"/v1/experiments/999999/{table}" if status == 404 else path
        answer = client.get(asked + query, headers=admin)
        assert answer.status_code == status and said in answer.get_json()["error"], query
    assert client.get(path, headers=_key(app, "predict")).status_code == 403


def test_the_cli_writes_the_same_table(app: Flask, settings: Settings) -> None:
    exp = load_label_experiment(app.extensions["abvoc"].db)
    api = app.test_client().get(f"/v1/experiments/{exp}/results.csv?max_slices=1",
                                headers=_key(app, "admin")).get_data(as_text=True)
    env = {"ABVOC_DATABASE_URL": settings.database_url, "ABVOC_DATA_DIR": str(settings.data_dir)}
    shown = CliRunner().invoke(main, ["experiment", "results", str(exp), "--csv",
                                      "--max-slices", "1"], env=env)
    assert shown.exit_code == 0, shown.output
    rows = list(csv.reader(io.StringIO(shown.stdout)))
    assert rows == list(csv.reader(io.StringIO(api))) and len(rows) > 2
    both = CliRunner().invoke(main, ["experiment", "results", str(exp), "--csv", "--json"],
                              env=env)
    assert both.exit_code == 2 and "give --json or --csv, not both" in both.output


def test_text_that_would_run_as_a_formula_is_defused() -> None:
    assert [cell(v) for v in ("=HYPERLINK(\"http://x\")", "+1", "-x", "@SUM(A1)", "\tx",
                              "a=b", "all")] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-x", "'@SUM(A1)", "'\tx", "a=b", "all"]
    assert [cell(v) for v in (None, True, False, -0.25, 3, 0.1 + 0.2)] == [
        "", "true", "false", "-0.25", "3", "0.30000000000000004"]
    # numpy's scalars as Python's (np.float64 is a float whose repr names numpy).
    assert [cell(v) for v in (np.float64(-0.2), np.int64(7), np.bool_(True), np.float32(0.5))] \
        == ["-0.2", "7", "true", "0.5"]
    written = table([{"slice": "=cmd|' /C calc'!A0", "difference": -0.5}],
                    {"experiment_id": 7})
    assert list(csv.reader(io.StringIO(written))) == [
        ["experiment_id", "slice", "difference"], ["7", "'=cmd|' /C calc'!A0", "-0.5"]]


def test_each_row_carries_its_slices_sample_ratio_check(app: Flask) -> None:
    """srm_p_value and srm_mismatch were always empty: each row now has the check of its slice
    from /results (the experiment's for `all`), a slice too small to test left empty."""
    db = app.extensions["abvoc"].db
    arms = [{"name": "ctl", "candidate": "cand-ctl", "weight": 0.5, "control": True},
            {"name": "t", "candidate": "cand-t", "weight": 0.5, "control": False}]
    per_slice = {"a": {"ctl": 150, "t": 50}, "c": {"ctl": 104, "t": 96}, "d": {"ctl": 3, "t": 1}}
    exp = add_experiment(db, arms=arms)
    apply(db, [prediction(f"{s}-{arm}-{i}", experiment_id=exp, arm=arm, candidate=f"cand-{arm}",
                          slice_=s, unit_id=f"{s}-{arm}-u{i}")
               for s, counts in per_slice.items() for arm, n in counts.items() for i in range(n)])
    client, admin = app.test_client(), _key(app, "admin")
    srm = client.get(f"/v1/experiments/{exp}/results", headers=admin).get_json()["srm"]
    rows = _rows(client, admin, f"/v1/experiments/{exp}/results.csv")
    by_slice = {r["slice"]: (r["srm_p_value"], r["srm_mismatch"]) for r in rows}
    assert set(by_slice) == {"all", "a", "c", "d"}
    assert by_slice["all"] == (cell(srm["p_value"]), "true") and srm["mismatch"] is True
    assert by_slice["a"] == (cell(srm["slice_p_values"]["a"]), "true")
    assert by_slice["c"] == (cell(srm["slice_p_values"]["c"]), "false")
    assert by_slice["d"] == ("", "")  # too small to test
    assert srm["mismatched_slices"] == ["a"] and srm["slice_p_values"]["d"] is None
