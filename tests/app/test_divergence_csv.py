"""GET /v1/experiments/{id}/divergence.csv: the divergence report's slice rows (offline beside
online, nested figures as columns) or its findings as a table, the same figures as the JSON
report to the last digit, with /divergence's query and refusals; and the CLI's --csv."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from core.settings import Settings
from evaluation.findings import FINDING_FIELDS
from evaluation.number_metrics import MAE_GAP_FIELDS
from evaluation.results_csv import cell, divergence_csv
from tests.app.test_results_csv import _key, _read, _rows, refused, report_and_table
from tests.evaluation.test_label_metrics import load_label_experiment


@pytest.fixture
def app(v2app: Flask) -> Flask:
    """The app with no candidate registered: the experiment's rows are stored directly."""
    return v2app


def _columns(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a slice row is written as, by the rule the API documents (a null MAE
    comparison is its fields, each empty)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "mae_gap" and value is None:
            value = dict.fromkeys(MAE_GAP_FIELDS)
        if isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in value.items()
                        if not k.endswith(("_ci", "_interval"))})
            for k, v in value.items():
                if k.endswith(("_ci", "_interval")):
                    out[f"{key}_{k}_low"], out[f"{key}_{k}_high"] = v or (None, None)
        else:
            out[key] = value
    return out


def test_each_slice_row_has_the_json_figures(app: Flask) -> None:
    exp, report, rows = report_and_table(app, "divergence", "divergence.csv")
    client, admin = app.test_client(), _key(app, "admin")
    assert len(rows) == len(report["slices"]) >= 4  # two candidates, 'all' and a slice each
    assert list(rows[0])[:4] == ["experiment_id", "candidate", "version", "slice"]
    assert {"offline_exact_match", "online_n", "online_accuracy_ci_low",
            "online_accuracy_ci_high", "gap", "p_value", "flagged"} <= set(rows[0])
    # Label candidates: no MAE comparison in any row, yet its columns are there (empty), as in
    # a number candidate's table.
    assert all(r["mae_gap"] is None for r in report["slices"])
    assert {f"mae_gap_{k}" for k in MAE_GAP_FIELDS} <= set(rows[0])
    for row, record in zip(rows, report["slices"], strict=True):
        assert row["experiment_id"] == str(exp)
        expected = _columns(record)
        assert set(row) - {"experiment_id"} == set(expected)
        assert {k: _read(row[k], v) for k, v in expected.items()} == expected
    # Online accuracy bounds 0.7 and 0.9 against the offline 0.9 of both.
    assert {r["candidate"]: float(r["gap"]) for r in rows if r["slice"] == "all"} == {
        "cand-a": pytest.approx(-0.2), "cand-b": 0.0}
    answer = client.get(f"/v1/experiments/{exp}/divergence.csv", headers=admin)
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="experiment-{exp}-divergence-slices.csv"'


def test_the_findings_table_is_ranked(app: Flask) -> None:
    exp, report, rows = report_and_table(app, "divergence", "divergence.csv?table=findings")
    client, admin = app.test_client(), _key(app, "admin")
    findings = report["findings"]
    assert findings and len(rows) == len(findings)
    # Every field any kind of finding carries has a column, whichever kinds this report holds.
    assert list(rows[0]) == ["experiment_id", "rank", *FINDING_FIELDS]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    for row, finding in zip(rows, findings, strict=True):
        assert {k: _read(row[k], v) for k, v in finding.items()} == finding
        # A column another kind of finding has is empty in this one's row.
        assert all(row[k] == "" for k in set(row) - set(finding) - {"experiment_id"})
    answer = client.get(f"/v1/experiments/{exp}/divergence.csv?table=findings", headers=admin)
    assert 'filename="experiment-' in answer.headers["Content-Disposition"]
    assert answer.headers["Content-Disposition"].endswith('-divergence-findings.csv"')


def test_the_query_is_the_json_reports(app: Flask) -> None:
    exp = load_label_experiment(app.extensions["abvoc"].db)
    client, admin = app.test_client(), _key(app, "admin")
    strict = _rows(client, admin, f"/v1/experiments/{exp}/divergence.csv?alpha=0.001")
    lax = _rows(client, admin, f"/v1/experiments/{exp}/divergence.csv")
    # A smaller alpha: wider intervals.
    assert all(float(s["online_accuracy_ci_low"]) < float(x["online_accuracy_ci_low"])
               for s, x in zip(strict, lax, strict=True))
    only_all = _rows(client, admin, f"/v1/experiments/{exp}/divergence.csv?max_slices=0")
    assert {r["slice"] for r in only_all} == {"all"}
    refused(app, exp, "divergence.csv", (
        ("?table=stages", 400, "'table' must be one of"),
        ("?format=json", 400, "unknown query parameter"), ("?alpha=2", 400, "alpha"),
        ("?table=findings", 404, "does not exist")))


def test_the_cli_writes_the_same_tables(app: Flask, settings: Settings) -> None:
    exp = load_label_experiment(app.extensions["abvoc"].db)
    env = {"ABVOC_DATABASE_URL": settings.database_url, "ABVOC_DATA_DIR": str(settings.data_dir)}
    for table, args in (("slices", []), ("findings", ["--table", "findings"])):
        api = app.test_client().get(f"/v1/experiments/{exp}/divergence.csv?table={table}",
                                    headers=_key(app, "admin")).get_data(as_text=True)
        shown = CliRunner().invoke(main, ["experiment", "divergence", str(exp), "--csv", *args],
                                   env=env)
        assert shown.exit_code == 0, shown.output
        rows = list(csv.reader(io.StringIO(shown.stdout)))
        assert rows == list(csv.reader(io.StringIO(api))) and len(rows) > 1, table
    for args, said in ((["--csv", "--json"], "give --json or --csv, not both"),
                       (["--table", "findings"], "give --csv too"),
                       (["--csv", "--table", "stages"], "'stages' is not one of")):
        refused = CliRunner().invoke(main, ["experiment", "divergence", str(exp), *args],
                                     env=env)
        assert refused.exit_code == 2 and said in refused.output, args


def test_nested_figures_and_customer_text_as_cells() -> None:
    report = {"experiment_id": 3, "slices": [
        {"candidate": "=HYPERLINK(\"http://x\")", "version": "1", "slice": "all",
         "online": {"n": 4, "accuracy_ci": None}, "mae_gap": None, "flagged": False},
        {"candidate": "b", "version": None, "slice": "@night",
         "online": {"n": 2, "accuracy_ci": [0.25, 0.5]},
         "mae_gap": {"difference": 0.1}, "flagged": True}], "findings": []}
    text = divergence_csv(report, "slices")
    rows = list(csv.DictReader(io.StringIO(text)))
    shown = ("experiment_id", "candidate", "version", "slice", "online_n",
             "online_accuracy_ci_low", "online_accuracy_ci_high", "mae_gap_difference", "flagged")
    assert [[r[k] for k in shown] for r in rows] == [
        ["3", "'=HYPERLINK(\"http://x\")", "1", "all", "4", "", "", "", "false"],
        ["3", "b", "", "'@night", "2", "0.25", "0.5", "0.1", "true"]]
    # Every other column (of a slice row's fields, or of the MAE comparison's) is empty here.
    assert all(v == "" for r in rows for k, v in r.items() if k not in shown)
    # A report of no slice rows yet (a draft experiment) has the same columns.
    header = text.splitlines()[0]
    assert divergence_csv({"experiment_id": 3, "slices": [], "findings": []}, "slices") == \
        header + "\r\n"
    assert {f"mae_gap_{k}" for k in MAE_GAP_FIELDS} | {"offline_exact_match", "online_n", "z",
                                                      "gap", "p_value"} <= set(rows[0])
    # No finding: the header alone, the same columns as a table with findings.
    assert divergence_csv(report, "findings") == \
        ",".join(["experiment_id", "rank", *FINDING_FIELDS]) + "\r\n"


def test_a_tolerance_of_0_forgives_no_gap(app: Flask, settings: Settings) -> None:
    """`tolerance` 0 (flag any gap) is taken by the API and the CLI, and tests against the
    offline figure itself: each online-below-offline p is then smaller than with the default
    0.02 forgiven; `alpha` stays above 0."""
    exp = load_label_experiment(app.extensions["abvoc"].db)
    client, admin = app.test_client(), _key(app, "admin")
    strict = client.get(f"/v1/experiments/{exp}/divergence?tolerance=0", headers=admin)
    assert strict.status_code == 200, strict.get_json()
    assert strict.get_json()["tolerance"] == 0
    lax = client.get(f"/v1/experiments/{exp}/divergence", headers=admin).get_json()
    pairs = [(s["p_value"], x["p_value"]) for s, x in zip(
        strict.get_json()["slices"], lax["slices"], strict=True) if x["p_value"] is not None]
    assert pairs and all(s < x for s, x in pairs), pairs
    refused(app, exp, "divergence", (
        ("?alpha=0", 400, "'alpha' must be a number above 0 and below 1"),
        ("?tolerance=-0.1", 400, "'tolerance' must be a number at least 0 and below 1"),
        ("?tolerance=1", 400, "'tolerance'")))
    env = {"ABVOC_DATABASE_URL": settings.database_url, "ABVOC_DATA_DIR": str(settings.data_dir)}
    shown = CliRunner().invoke(main, ["experiment", "divergence", str(exp), "--tolerance", "0",
                                      "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert '"tolerance": 0' in shown.stdout
    shown = CliRunner().invoke(main, ["experiment", "divergence", str(exp), "--tolerance", "-0"],
                               env=env)  # -0 is 0, not a "-0%" in the text
    assert shown.exit_code == 0 and "tolerance 0%" in shown.stdout, shown.output


def test_a_figure_json_writes_as_null_is_an_empty_cell() -> None:
    """A NaN or an infinity, which the JSON reports write null, is an empty cell, as null is:
    the CSV, written "as results.csv" (empty for null), wrote them 'nan'."""
    assert [cell(v) for v in (math.nan, np.float64("inf"), -math.inf, None)] == [""] * 4


def test_an_alpha_as_small_as_1e_300_still_gives_intervals(app: Flask) -> None:
    """/divergence takes any alpha above 0: at 1e-300 the normal quantile read as ppf(1 -
    alpha / 2) was infinite (1 - 5e-301 is 1.0 in floating point) and every interval null;
    read from the upper tail it is 37.5, and the intervals are wide but there."""
    exp = load_label_experiment(app.extensions["abvoc"].db)
    client, admin = app.test_client(), _key(app, "admin")
    query = f"/v1/experiments/{exp}/divergence{{}}?alpha=1e-300"
    report = client.get(query.format(""), headers=admin).get_json()
    rows = _rows(client, admin, query.format(".csv"))
    intervals = [r["online"]["accuracy_ci"] for r in report["slices"]]
    assert intervals and all(0 <= low <= high <= 1 for low, high in intervals), intervals
    for row, record in zip(rows, report["slices"], strict=True):
        expected = _columns(record)
        assert {k: _read(row[k], v) for k, v in expected.items()} == expected
